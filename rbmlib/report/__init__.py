"""The report: the pipeline that executes the notebooks and renders the paper, and the code behind each notebook.

``pipeline`` runs the notebooks and Quarto (``python -m rbmlib.report``). One
module per notebook holds what that notebook computes, draws and says:
``explore`` (01), ``anatomy`` (02), ``toy`` and ``likelihood`` (03), ``studies``
(04), ``results`` (05), ``speed`` (06); ``plots`` and ``tables`` are shared by them.
"""
