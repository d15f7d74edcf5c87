"""The GGUF file format as apt_fast writes and reads it: the tensor types (tensor_types), a strict reader
(reader, dequantize), the "apt" architecture's metadata keys (metadata), tensor names (tensor_names) and
stored tokenizer files (tokenizer_files).

It depends on neither the model (apt_fast.models) nor the export (apt_fast.export), so both use it: the
export writes files with it, ``apt_fast.load`` reads them (apt_fast.models.apt.gguf_loading). Not to be
confused with gguf-py, the PyPI package imported as ``gguf``, which the writer and the dequantizer call.
The public entry points stay in apt_fast.export (export_gguf, load_gguf, read_gguf, GGUFError).
"""
