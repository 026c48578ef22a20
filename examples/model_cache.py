"""A persisted model cache: the first run "downloads" the weights into
TRANSFORMERS_CACHE on the volume, every later run (a new app, a new
process) finds them there.

    python3 examples/model_cache.py      # run it twice
"""

import hashlib
import os

import svol

app = svol.App("inference")
volume = svol.SharedVolume().persist("model-cache-vol")


@app.function(shared_volumes={"/cache": volume}, env={"TRANSFORMERS_CACHE": "/cache"})
def run_inference(prompt: str) -> str:
    weights = os.path.join(os.environ["TRANSFORMERS_CACHE"], "tiny-model", "weights.bin")
    if os.path.exists(weights):
        how = "cached"
    else:
        how = "downloaded"
        os.makedirs(os.path.dirname(weights), exist_ok=True)
        with open(weights + ".part", "wb") as f:
            f.write(os.urandom(16 << 20))  # stands in for a real download
        os.rename(weights + ".part", weights)
    with open(weights, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    return f"{prompt!r} answered by model {digest} ({how})"


if __name__ == "__main__":
    with app.run():
        print(run_inference.remote("hello"))
