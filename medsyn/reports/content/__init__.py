"""What a report is made of, read and computed from results.json files and run folders.

``inputs`` (finding and reading them), ``metrics`` (the summary columns and their registered
directions), ``cells`` (results.json values read into table cells), ``baselines`` (published
rows, when comparable), ``agreement`` (ranking agreement between metrics and spaces),
``verdict`` (one plain-words verdict per evaluation), ``translation`` (the verdict of a
translation evaluation), ``privacy`` (the privacy block), ``audits`` (trust cards), ``plots``
(figures of run pages). Nothing here lays out a page or writes the report folder: that is the
job of the modules one level up.
"""
