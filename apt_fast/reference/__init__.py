"""Plain-PyTorch reference of every op: the specification, the test oracle and the fallback kernel."""
