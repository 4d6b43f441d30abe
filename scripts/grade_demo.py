"""Grade demo: ``python scripts/grade_demo.py [options] [hw ...]``.

A thin entry point for ``python -m grader.demo`` (grader/demo.py holds the made-up
students and the options; grader/students/<hw>.py the per-homework ones).
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from grader.demo import main  # noqa: E402

if __name__ == "__main__":
    main(sys.argv[1:])
