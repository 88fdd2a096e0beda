"""The live flow: the frame message on Kafka and its topics, camera ingest and the stream
simulator, the per-partition pipeline of the streaming job and its launcher."""
