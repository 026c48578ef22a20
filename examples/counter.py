"""A shared cache of an expensive computation: four calls at once on one
ephemeral volume, each incrementing a counter under a lock file. The
volume is deleted when the app stops.

    python3 examples/counter.py          # needs root (mounts) and a server
"""

import datetime
import shelve

import svol

app = svol.App("counter")
scratch = svol.SharedVolume()  # ephemeral: lives as long as the app runs


@app.function(shared_volumes={"/data": scratch})
def increment(times: int) -> None:
    from flufl.lock import Lock  # pip install flufl.lock

    for _ in range(times):
        with Lock("/data/counter.lock", lifetime=datetime.timedelta(seconds=60)):
            with shelve.open("/data/counter") as db:
                db["n"] = db.get("n", 0) + 1


@app.function(shared_volumes={"/data": scratch})
def total() -> int:
    with shelve.open("/data/counter") as db:
        return db["n"]


if __name__ == "__main__":
    with app.run():
        list(increment.map([50] * 4, concurrency=4))
        print("counter:", total.remote())  # 200, every time
    print("app stopped; the volume is gone")
