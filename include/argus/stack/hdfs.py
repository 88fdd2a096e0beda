from argus.stack.service import Service
class NameNodeService(Service):
    name="hdfs-namenode"; group="hdfs"
class DataNodeService(Service):
    name="hdfs-datanode"; group="hdfs"; requires=("hdfs-namenode",)
