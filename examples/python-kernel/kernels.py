"""Python kernels for examples/python-kernel/pipeline.yaml.

A python.kernel function gets its inputs and its outputs as numpy views of the stream slots (zero-copy) and
its parameters as a dict; it writes its result into the outputs in place.
"""

import numpy as np


def smooth(inputs, outputs, parameters):
    """Each value mixed with the mean of its row: out = (1 - w) * x + w * mean(x, axis=1)."""
    x, out = inputs[0], outputs[0]
    w = float(parameters.get("weight", 0.5))
    np.multiply(x, 1.0 - w, out=out)
    out += w * x.mean(axis=1, keepdims=True)
