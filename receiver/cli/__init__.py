"""The ``receiver`` command line (click). The only importer of the
composition root (:mod:`receiver.service`) besides the sandbox demo and the
devtools.
"""
