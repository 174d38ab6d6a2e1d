"""``python -m eventcore``: the ``eventcore`` command (needs ``pip install 'eventcore[cli]'``)."""

from eventcore.cli import main

if __name__ == "__main__":
    main()
