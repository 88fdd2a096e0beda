"""The archive flow: the recordings' layout on HDFS, their segments, reprocessing them with
the live flow's detector and rows, and launching that Spark batch job."""
