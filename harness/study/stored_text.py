"""Small text files beside a study's Tune state, on local disk or a storage URI (s3://, gs://,
file://): the saved search space, outcomes, choices, looks and the declaration record. Through
`pyarrow.fs`, the file systems Ray Tune itself writes to."""

from __future__ import annotations

from pathlib import Path


def _fs(uri: str):
    import pyarrow.fs

    if "://" not in uri:
        uri = str(Path(uri).resolve())
    return pyarrow.fs.FileSystem.from_uri(uri)


def read_text(uri: str) -> str | None:
    """The file's text; None when it does not exist."""
    import pyarrow.fs

    fs, path = _fs(uri)
    if fs.get_file_info(path).type == pyarrow.fs.FileType.NotFound:
        return None
    with fs.open_input_stream(path) as stream:
        return stream.read().decode()


def write_text(uri: str, text: str) -> None:
    """Write `text` to the file (its folder made); a partial file is never left behind."""
    fs, path = _fs(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path + ".part") as stream:
        stream.write(text.encode())
    fs.move(path + ".part", path)


def delete(uri: str) -> None:
    """Remove the file if it exists."""
    if read_text(uri) is not None:
        fs, path = _fs(uri)
        fs.delete_file(path)


def names(folder: str) -> list[str]:
    """The names of the folder's entries (none when it does not exist)."""
    import pyarrow.fs

    fs, path = _fs(folder)
    if fs.get_file_info(path).type == pyarrow.fs.FileType.NotFound:
        return []
    return [info.base_name for info in fs.get_file_info(pyarrow.fs.FileSelector(path))]
