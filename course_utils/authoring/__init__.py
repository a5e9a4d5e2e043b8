"""Tools for the people who write and teach the course; students never call them.

- :mod:`.conventions`       every notebook's Colab badge and setup cell, and the conventions check
                            (``python -m course_utils.authoring.conventions [--check]``)
- :mod:`.execute`           re-execute notebooks in full mode and store their outputs
- :mod:`.exercise`          which notebook is the graded exercise (source, student version, assignment)
                            and the re-use check its hidden tests call
- :mod:`.site`              the course website from the committed notebooks (``make site``)

Instructors only (the student release, :mod:`.release`, leaves these out):

- :mod:`.nbgrader_release`  run ``nbgrader generate_assignment`` on a source notebook
- :mod:`.student_version`   generate the student version of the exercise and check it is in sync
- :mod:`.grading`           autograde a folder of submissions into a gradebook CSV, each kernel in
                            :mod:`.sandbox` (bubblewrap), with :mod:`.grader_kernel` (restore + nonce,
                            kernel side in :mod:`.kernel_guard`) and :mod:`.submission_checks` (review flags)
- :mod:`.release`           write the public student release (no solutions, no hidden tests)
- :mod:`.loader_benchmark`  time the exercise's reference data pipeline (read from the solution source)
                            against decoding every sample

Teaching modules (``course_utils.*``) never import from here; ``tests/test_package_structure.py``
checks it.
"""
