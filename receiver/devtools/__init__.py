"""Developer tools shipped with the package but never imported by the
service: ``receiver bench ...`` (benchmarks), the chaos run and a TCP proxy
with an off switch. Only the CLI imports this package.
"""
