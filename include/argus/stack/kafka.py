"""Kafka 4 in KRaft mode: one JVM that is both broker and controller."""

from __future__ import annotations

import subprocess

from argus.live.message import MAX_MESSAGE_BYTES
from argus.stack.jvm import SetupError
from argus.stack.service import LOG4J2_STDOUT, Service, StackContext, listening, write_properties


class KafkaService(Service):
    name = "kafka"
    marker = "kafka.Kafka"
    group = "kafka"
    ports = ("kafka", "kafka_controller")
    pom = "kafka"
    startup_timeout = 120.0
    data = ("kafka",)

    def url(self, cfg):
        return cfg.kafka_bootstrap

    def prepare(self, ctx: StackContext) -> None:
        cfg = ctx.cfg
        conf, data = cfg.conf_dir(self.name), cfg.data_dir("kafka")
        host, port, cport = cfg.host, cfg.port("kafka"), cfg.port("kafka_controller")
        write_properties(conf / "server.properties", {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@{host}:{cport}",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": data / "logs",
            # one node: every internal topic has a single replica
            "offsets.topic.replication.factor": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            # topic defaults for video frames
            "num.partitions": 6,
            "message.max.bytes": MAX_MESSAGE_BYTES,
            "replica.fetch.max.bytes": MAX_MESSAGE_BYTES,
            "log.retention.hours": 72,
            "log.segment.bytes": 256 * 2**20,
            "compression.type": "producer",  # JPEG is already compressed
            "auto.create.topics.enable": "true",
        })
        write_properties(conf / "log4j2.properties", LOG4J2_STDOUT)
        if not (data / "logs" / "meta.properties").exists():
            self._format(ctx, conf, data)

    def _format(self, ctx: StackContext, conf, data) -> None:
        (data / "logs").mkdir(parents=True, exist_ok=True)
        base = self.java_argv(ctx, "kafka.tools.StorageTool", heap="256m")
        uuid = subprocess.run([*base, "random-uuid"], capture_output=True, text=True, timeout=120)
        cluster_id = uuid.stdout.strip().splitlines()[-1] if uuid.returncode == 0 and uuid.stdout.strip() else ""
        if not cluster_id:
            raise SetupError(f"kafka: could not make a cluster id: {uuid.stderr.strip()[-500:]}")
        fmt = subprocess.run([*base, "format", "-t", cluster_id, "-c", str(conf / "server.properties"),
                              "--ignore-formatted"], capture_output=True, text=True, timeout=120)
        if fmt.returncode != 0:
            raise SetupError(f"kafka: formatting the KRaft storage failed: {fmt.stderr.strip()[-500:]}")

    def argv(self, ctx: StackContext) -> list[str]:
        conf = ctx.cfg.conf_dir(self.name)
        return self.java_argv(
            ctx, "kafka.Kafka", str(conf / "server.properties"), heap="512m",
            opts=("-Xms256m", f"-Dlog4j2.configurationFile={conf / 'log4j2.properties'}"),
        )

    def ready(self, ctx: StackContext) -> bool:
        from confluent_kafka.admin import AdminClient

        if not listening(ctx.cfg.host, ctx.cfg.port("kafka")):
            return False
        admin = AdminClient({"bootstrap.servers": ctx.cfg.kafka_bootstrap, "socket.timeout.ms": 2000,
                             "log_level": 0})
        try:
            meta = admin.list_topics(timeout=3)
        except Exception:
            return False
        return bool(meta.brokers)
