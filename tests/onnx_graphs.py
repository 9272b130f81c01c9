"""Small ONNX graphs that tests in several folders build."""

from __future__ import annotations


def external_tensor(name: str, location: str, size: int = 1):
    """A float tensor of ``size`` zeros whose data is marked as stored externally at ``location`` (as written,
    unchecked; no file is made)."""
    from onnx import TensorProto, helper

    tensor = helper.make_tensor(name, TensorProto.FLOAT, [size], [0.0] * size)
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=location)
    return tensor


def graph_with_external_data(folder, location: str, size: int = 1):
    """A one-Add graph in ``folder`` whose weight (``size`` floats) is external data at ``location`` (as written,
    unchecked)."""
    import onnx
    from onnx import TensorProto, helper

    tensor = external_tensor("w", location, size)
    node = helper.make_node("Add", ["x", "w"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size])],
        [tensor],
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "g.onnx"
    onnx.save(helper.make_model(graph), str(path))
    return path
