# The README's two commands: `make run` and `make test`. Both call scripts/ so local and CI cannot drift.
.PHONY: run test check bench install mutation

run:
	@sh scripts/serve

test:
	@sh scripts/test

check:
	@sh scripts/check

install:
	@sh scripts/install

bench:
	@sh scripts/bench

# Not part of `make test`: minutes long; see docs/TESTING.md.
mutation:
	@sh scripts/mutation
