# deploy/: how people run spool. `make run` (scripts/run.sh): a private Redis, the API
# and the workers with their logs in one stream; `make demo` (scripts/demo.sh): a clip
# and a dataset through it; the container image, docker-compose.yml, systemd units and
# Kubernetes manifests, checked by `make check-deploy` (tests/integration/test_ops.py,
# also part of `make test`).
#
#   make run [API_HOST=127.0.0.1] [API_PORT=8080] [REDIS_PORT=6390]
#            [VIDEO_WORKERS=1] [PDF_WORKERS=1] [VAR_DIR=var]
#   make demo [API_PORT=8080]             with `make run` going in another terminal
#   make docker-image                     build the image (a Docker engine, and the base
#                                         images: scripts/base-images.sh makes them if need be)

API_HOST ?= 127.0.0.1
API_PORT ?= 8080
REDIS_PORT ?= 6390
VIDEO_WORKERS ?= 1
PDF_WORKERS ?= 1
VAR_DIR ?= var
RUN_ENV = API_HOST='$(API_HOST)' API_PORT='$(API_PORT)' REDIS_PORT='$(REDIS_PORT)' \
	VIDEO_WORKERS='$(VIDEO_WORKERS)' PDF_WORKERS='$(PDF_WORKERS)' VAR_DIR='$(VAR_DIR)' \
	BIN_DIR='$(abspath $(BIN))'

run:
	@sh scripts/deps.sh
	@$(MAKE) --no-print-directory all
	@$(RUN_ENV) bash scripts/run.sh

demo:
	@sh scripts/deps.sh
	@$(MAKE) --no-print-directory $(BIN)/spoolctl
	@$(RUN_ENV) bash scripts/demo.sh

.PHONY: check-deploy docker-image
check-deploy:
	@sh scripts/deps.sh
	@$(MAKE) --no-print-directory test-build
	@SPOOL_BIN_DIR=$(abspath $(BIN)) SPOOL_TEST_BIN_DIR=$(abspath $(O)/tests) \
		python3 tests/run.py test_ops

docker-image:
	@bash scripts/base-images.sh
	docker build -f deploy/Dockerfile -t spool:$(VERSION) -t spool:latest .
