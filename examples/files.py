"""Files of a volume without any mount: upload a tree (only blocks the
server lacks are sent), list, read as a stream, copy on the server, and
delete the volume by stopping its app (what the dashboard's trash icon
does).

    python3 examples/files.py            # no root needed
"""

import os
import tempfile

import svol

vol = svol.Volume.from_name("example-files", create_if_missing=True)

with tempfile.TemporaryDirectory() as local:
    os.makedirs(os.path.join(local, "weights"))
    with open(os.path.join(local, "weights", "model.bin"), "wb") as f:
        f.write(os.urandom(10 << 20))
    with vol.batch_upload(force=True) as batch:
        batch.put_directory(os.path.join(local, "weights"), "/weights")
        batch.put_data(b'{"layers": 2}', "/weights/config.json")
    print(f"uploaded, {batch.bytes_sent} block bytes sent")

for entry in vol.listdir("/", recursive=True):
    print(f"{entry.type.value:4} {entry.size:>10} {entry.path}")

size = sum(len(chunk) for chunk in vol.read_file("/weights/model.bin"))  # 4 MiB at a time
print("streamed", size, "bytes")

vol.copy_files("/weights", "/weights-v2", recursive=True)  # no data moves
print(vol.read_bytes("/weights-v2/config.json"))

info = vol.info()
print(f"{info.name}: {info.files} files, {info.bytes} bytes; deleting by stopping app {info.app}")
svol.App.stop_by_id(info.app)
