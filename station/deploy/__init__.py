"""Field deployment: broker accounts, ACLs and the files a station or collector is installed from.

    passwd.py     Mosquitto's password file and its PBKDF2-SHA512 ("$7$") hashes
    acl.py        the ACL file: station patterns, one block per collector/researcher/operator
    configs.py    station.toml and collector.toml made from the shipped examples
    files.py      atomic writes that keep a file's mode and owner; the provisioning lock
    provision.py  ``station provision NAME``: all of the above, idempotent

Standard library only, so the install scripts can run it before any venv exists.
The shell side (install scripts, Mosquitto configuration) lives in ``deploy/``;
docs/deployment.md explains both.
"""
