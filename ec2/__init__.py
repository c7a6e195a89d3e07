"""The comparison instance's bootstrap (``bootstrap.sh``) and batch runner (``runner.py``)."""
