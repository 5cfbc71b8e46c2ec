"""Benchmarks: each prints figures and never asserts (tests assert behaviour, benches measure).

Every bench is a module here with three functions, and one line in :data:`BENCHES`:

    add_arguments(parser)   its options; each option's ``dest`` is a keyword of run()
    run(**options) -> dict  measures, returns a JSON-able report
    print_report(report)    the report for a terminal

``station bench NAME [--json]`` imports the module only when NAME is asked for.
"""

BENCHES: dict[str, tuple[str, str]] = {
    "motion": ("station.bench.motion",
               "motion detection speed, idle CPU, RSS, and accuracy against a frame-difference baseline"),
    "classifier": ("station.bench.classifier",
                   "model size, load time, latency (1/2 threads, int8/fp32, runtimes), classify-path overhead, RSS"),
    "feed": ("station.bench.feed",
             "outbox commit and drain rates to a local Mosquitto; event-to-delivered latency"),
    "collector": ("station.bench.collector",
                  "collector ingest rate (SQLite, PostgreSQL) against a plain subscriber; backlog drain"),
    "fuzz": ("station.bench.fuzz",
             "hostile messages by the thousand against a real collector (SQLite, PostgreSQL)"),
    "dashboard": ("station.bench.dashboard", "API and dashboard latency over HTTP with a million detections"),
    "pipeline": ("station.bench.pipeline",
                 "the whole station on synthetic scenes: events found and tags given per kind"),
    "pir": ("station.bench.pir",
            "[trigger] modes (motion, pir_and_motion, pir_wake) on synthetic scenes with a simulated PIR: "
            "recall, false events/h, camera-on share"),
}
"""name -> (module, one-line help)"""
