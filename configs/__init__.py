"""``riffd.configs``: the TOML recipes (``riffd train NAME``) and serve configs
(``riffd serve --config NAME``) that ship with riffd, read with importlib.resources.

A regular package (this file) rather than a namespace one, so that importlib.resources reads
it the same way from a wheel, an editable install and a checkout.
"""
