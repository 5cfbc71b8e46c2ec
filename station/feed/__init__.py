"""The MQTT feed: the message contract and, beside it, the outbox and the publisher.

    topics.py     the topic tree, QoS/retain per kind, parse_topic()
    messages.py   pure builders for each message, thumbnails, command parsing, encode()
    schema.py     validate() against the JSON Schemas in schemas/
    schemas/      one JSON Schema (draft 2020-12) per message; docs/mqtt-feed.md explains them

Import from the modules themselves (``from station.feed.messages import detection_message``).
"""
