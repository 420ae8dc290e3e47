# The two quick-start commands (see README): each does all set-up first.
.PHONY: demo test setup lint unit bench stop image mutation
demo:
	hack/setup.sh
	.venv/bin/tke-localcluster demo

test:
	hack/setup.sh
	hack/test.sh

setup:
	hack/setup.sh

lint:
	hack/test.sh --lint-only

stop:
	.venv/bin/tke-localcluster stop

bench:
	.venv/bin/python -m bench

# Mutation testing of the IP-safety code (docs/testing.md): mutants killed/total per
# module and every survivor; `make mutation ARGS="'cni.agent.pool.*'"` for a subset.
mutation:
	hack/mutation.sh $(ARGS)

# The component image with buildah on a Debian-made base (docs/image.md); also served
# to the local nodes as tke-vpc-cni:dev.
image:
	hack/setup-debian.sh
	hack/image/build.sh
