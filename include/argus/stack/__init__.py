"""The local Argus stack: Kafka, HBase + Thrift, HDFS, Spark standalone and Airflow on loopback."""
