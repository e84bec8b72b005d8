"""The two analysis levels, as the command line calls them after parsing and validating.

:mod:`~xaibids.levels.participant` extracts each subject's features with the participant
workflow; :mod:`~xaibids.levels.group` gathers them (running the participant step first for
subjects without features), trains and explains the ensembles, and writes the group outputs and
reports. Both take the parsed configuration and the option names of the command line (for the
methods text); neither imports :mod:`xaibids.cli`.
"""
