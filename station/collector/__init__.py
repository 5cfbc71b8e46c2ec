"""The collector: subscribes to the stations' MQTT feed and keeps what they send.

    db.py          the database (SQLite by default, PostgreSQL by URL): store_batch(), queries
    migrations/    the schema, one numbered module per version, applied by Database.migrate()
"""
