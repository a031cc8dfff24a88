"""outputs: the files of a study -- tables, figures, report, GIS layers.

May import :mod:`gridplan.study` and every layer below it. :func:`write_study` writes a
study's folder, complete or not at all.
"""

from gridplan.outputs.study import check_output_folder, study_folder, write_study

__all__ = ["check_output_folder", "study_folder", "write_study"]
