"""``python -m ecins_link`` runs the ``ecins-link`` command line."""

from ecins_link.cli import app

if __name__ == "__main__":
    app()
