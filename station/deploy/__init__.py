"""Field deployment: broker accounts, roles and the files a station or collector is installed from.

    acl.py        who may read and write what: the roles of each account kind
    dynsec.py     the accounts and roles in Mosquitto's dynamic-security plugin: its file, or the running broker
    passwd.py     passwords, and the "$7$" PBKDF2-SHA512 hashes of an older Mosquitto password file
    configs.py    station.toml and collector.toml made from the shipped examples
    files.py      atomic writes that keep a file's mode and owner; the provisioning lock
    provision.py  ``station provision NAME``: all of the above, idempotent

Standard library only, so the install scripts can run it before any venv exists, except
for paho-mqtt, imported only to hand a change to a running broker.
The shell side (install scripts, Mosquitto configuration) lives in ``deploy/``;
docs/deployment.md explains both.
"""
