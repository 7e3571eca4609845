"""The `inferhook` command, the dev stack and local infrastructure: the top of the tree.

Everything here may import every other package (the services it launches, the client it
drives); nothing below imports `cli`.

    main.py       the parser and the entry point; each command module adds its subcommands
    command.py    what a command handler is, and how a command that talks to the API ends
    dev.py        `up`, `infra`: the dev stack (stack.py) and local servers (infra/)
    admin.py      `migrate`, `models build`, `keys`
    services.py   `ingest`, `executor`, `dispatcher`: one service in the foreground
    predict.py    `predict`, `predictions` (with inputs.py, progress.py), through inferhook-client
    webhooks.py   `webhooks listen`
    supervise.py  restarting service processes that exit (the dev stack, fault tests)
"""
