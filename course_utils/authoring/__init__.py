"""Tools for the people who write and teach the course; students never call them.

- :mod:`.conventions`       every notebook's Colab badge and setup cell, and the conventions check
                            (``python -m course_utils.authoring.conventions [--check]``)
- :mod:`.execute`           re-execute notebooks in full mode and store their outputs
- :mod:`.exercise`          which notebook is the graded exercise (source, student version, assignment)
                            and the re-use check its hidden tests call
- :mod:`.nbgrader_release`  run ``nbgrader generate_assignment`` on a source notebook
- :mod:`.student_version`   generate the student version of the exercise and check it is in sync
- :mod:`.grading`           autograde a folder of submissions into a gradebook CSV
- :mod:`.loader_benchmark`  time the exercise's reference data pipeline against decoding every sample
- :mod:`.site`              the course website from the committed notebooks (``make site``)

Teaching modules (``course_utils.*``) never import from here; ``tests/test_package_structure.py``
checks it.
"""
