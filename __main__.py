"""``python -m trainfix``: the same entry point as the ``trainfix`` console script."""

from trainfix.cli.app import main

if __name__ == "__main__":
    main()
