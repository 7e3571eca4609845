"""`inferhook up` and `inferhook infra`: the dev stack and the local Kafka and Postgres."""

from __future__ import annotations

import argparse

from cli.command import Handler, Subparsers
from inferhook.settings import Settings


def up(settings: Settings, args: argparse.Namespace) -> None:
    from cli.stack import up

    up(settings)


def infra(settings: Settings, args: argparse.Namespace) -> None:
    from cli.infra.kafka import resolve_jars
    from cli.stack import dev_kafka_env, infra_down, infra_status, infra_up

    if args.action == "fetch":
        print(f"Kafka jars in {resolve_jars(settings.state_dir / 'kafka-jars')}")
        return
    if args.brokers is not None and args.brokers < 1:
        raise ValueError("--brokers needs 1 or more")
    if args.action == "up":
        infra_up(settings, args.brokers)
    elif args.action == "down":
        infra_down(settings)
    for name, line in infra_status(settings).items():
        print(f"{name}: {line}")
    if args.action != "down" and (env := dev_kafka_env(settings)):
        print("services run by hand need (`inferhook up` sets them itself):")
        for key, value in env.items():
            print(f"  export {key}={value}")


def commands(sub: Subparsers) -> dict[str, Handler]:
    """Register `up` and `infra`; return their handlers by name."""
    sub.add_parser("up", help="start Kafka, Postgres, the services and models; Ctrl-C stops")
    p = sub.add_parser("infra", help="local Kafka and Postgres")
    p.add_argument("action", choices=["fetch", "up", "down", "status"])
    p.add_argument("--brokers", type=int, metavar="N",
                   help="up: Kafka nodes; 3 starts a cluster on 127.0.0.1:9092,9093,9094 "
                        "with RF 3 and min.insync.replicas 2 (default: the dev Kafka "
                        "that runs, else 1)")
    return {"up": up, "infra": infra}
