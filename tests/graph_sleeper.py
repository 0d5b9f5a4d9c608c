"""Stands in for `graphs.sbm` in a test of the communities time bound: it never finishes."""

import time

if __name__ == "__main__":
    time.sleep(600)
