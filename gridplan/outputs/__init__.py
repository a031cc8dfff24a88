"""outputs: figures, report, GIS layers and the files of a study.

May import :mod:`gridplan.study` and every layer below it.
"""
