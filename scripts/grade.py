"""Grade the homework of a class: ``python scripts/grade.py HW [options]``.

A thin entry point for ``python -m grader.grade`` (the grading package, grader/, lives at
the repository root, outside the lmcourse wheel); see grader/grade.py for the options.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from grader.grade import main  # noqa: E402

if __name__ == "__main__":
    main(sys.argv[1:])
