"""The OpenWhisk companion module: credentials, REST client, apply/destroy/status.

Everything here is shared by the ``shpc ow`` commands, the ``openwhisk`` target and the
Pulumi program in ``openwhisk/``, so the three speak to the controller the same way. Only
the standard library is imported at package level; ``aiohttp`` is imported when a client
is built, so the CLI's ``--help`` stays light.
"""
