"""The same file calls from asyncio: every blocking call has an awaitable
form, `.aio`, which runs it without blocking the event loop.

    python3 examples/async_files.py
"""

import asyncio

import svol


async def main() -> None:
    vol = await svol.Volume.from_name.aio("example-async", create_if_missing=True)
    await asyncio.gather(*(vol.write_file.aio(f"/n/{i}.txt", str(i).encode()) for i in range(20)))
    names = [e.path for e in await vol.listdir.aio("/n")]
    print(len(names), "files")
    async for chunk in await vol.read_file.aio("/n/7.txt"):
        print("7.txt holds", chunk)
    await svol.Volume.delete.aio("example-async")


asyncio.run(main())
