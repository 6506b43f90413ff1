"""A sweep point function that is importable but not registered (test fixture)."""


def echo(config):
    return {"seed_echo": float(config.get("seed", 0))}
