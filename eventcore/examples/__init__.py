"""Small example domains used by the demo, the README and the course notebooks.

They are teaching material built only on the public API: read them as worked examples.
"""
