"""The peers our benchmarks run beside ours: the same create-order work, written the way a
team would write it with each tool. Every variant validates the same body with a pydantic
model, writes one DynamoDB item (or the in-memory equivalent) and logs one JSON line."""
