# edgecnn: `make demo` runs the main job offline; `make test` runs the test suite.
# Both create the virtualenv they need (.venv) on first use; `make test` also installs the system
# packages the tests need (test-deps: tools/ci_setup.sh), or fails naming what is missing.
VENV   ?= .venv
PY     := $(VENV)/bin/python
EDGECNN := $(VENV)/bin/edgecnn
STAMP  := $(VENV)/.installed-$(shell cat setup.py | cksum | cut -d' ' -f1)

.PHONY: install test test-deps demo bench java-test arm-root arm-check clean

install: $(STAMP)

$(STAMP): setup.py
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[train,dev,openvino]'
	@rm -f $(VENV)/.installed-*
	@touch $@

test: install test-deps java-test arm-root
	$(PY) -m pytest -q -p no:cacheprovider tests

# sshd (remote-benchmark tests), shellcheck (Pi scripts), JDK + junit4 + hamcrest + org.json (the
# app's JVM tests): installed with apt-get where missing; fails naming what it could not install.
# Then MediaPipe's own virtualenv ($(MP_VENV), tools/mediapipe-requirements.txt), in which the
# tests run MediaPipe's ImageClassifier on exported files: made once, remade only when the pin changes.
test-deps:
	bash tools/ci_setup.sh
	@$(MAKE) -s --no-print-directory $(MP_STAMP)

MP_VENV  ?= .venv-mediapipe
MP_REQS  := tools/mediapipe-requirements.txt
MP_STAMP := $(MP_VENV)/.installed-$(shell cat $(MP_REQS) | cksum | cut -d' ' -f1)

$(MP_STAMP): $(MP_REQS)
	@echo "test-deps: MediaPipe's virtualenv $(MP_VENV) from $(MP_REQS) (once, ~30 s)"
	@test -x $(MP_VENV)/bin/python || python3 -m venv $(MP_VENV)
	$(MP_VENV)/bin/python -m pip install -q --upgrade pip
	$(MP_VENV)/bin/python -m pip install -q -r $(MP_REQS)
	@rm -f $(MP_VENV)/.installed-*
	@touch $@

# The main job, offline: the zoo against its papers, then QuickNet trained on the bundled real
# CIFAR-10 sample, exported (fp32/int8 TFLite, ONNX; a mixed TFLite only where it beats int8 on the
# Pi 4), verified on LiteRT and ONNX Runtime, benchmarked here and on emulated Pi 4 / Pi 5 cores, with
# runs/quicknet/demo/report.md opening on the file to ship per target, and its plots. The arm64 root
# for the emulated Pis is built first where it can be (make arm-root: qemu-user, debootstrap); where
# it cannot, the report says why in one line and the Pi targets are left out. DEMO_EPOCHS trades
# time for accuracy.
DEMO_MODEL   ?= quicknet
DEMO_EPOCHS  ?= 6
DEMO_TARGETS ?= pi4,pi5,host
demo: install
	@bash tools/arm_root.sh || echo "make demo: no arm64 root (see above): the report leaves the Pi targets out and says why"
	$(EDGECNN) models --paper
	rm -rf runs/$(DEMO_MODEL)/demo
	$(EDGECNN) pipeline $(DEMO_MODEL) --name demo --epochs $(DEMO_EPOCHS) --target $(DEMO_TARGETS)
	@echo "report: runs/$(DEMO_MODEL)/demo/report.md"

# make bench: (1) the papers' speed and size claims beside this machine's figures, one run
# (edgecnn bench paper: bench/paper_claims.md/.json/*.png; one export folder per model cached in
# bench/.cache/<model>/, so re-runs only time); (2) with an exported run (BENCH_RUN=runs/<model>/<run>,
# default the first under runs/): its x86 figures and the x86 baseline of a Raspberry Pi 4 (every
# artifact of the export, the mixed-precision one included), its TFLite artifacts on emulated Pi 4 / Pi 5
# cores beside this machine's rows (bench/emulated/: predicted, not measured; needs `make arm-root`),
# and when it has a _mixed.tflite, fp32 /
# int8 / mixed timed interleaved in one process (bench/mixed_interleaved/);
# (3) the harness's own overhead, on that run's int8 model, else on the cached structure-E int8 model.
BENCH_RUN ?= $(patsubst %/export/manifest.json,%,$(firstword $(wildcard runs/*/*/export/manifest.json)))
BENCH_ART = $(firstword $(wildcard $(BENCH_RUN)/export/*_int8.tflite) $(wildcard $(BENCH_RUN)/export/*.tflite))
PAPER_CLAIMS_ARGS ?=

bench: install
	$(EDGECNN) bench paper --out bench $(PAPER_CLAIMS_ARGS)
	@if [ -n "$(BENCH_RUN)" ]; then \
		set -x; \
		$(EDGECNN) benchmark $(BENCH_RUN) --runtime litert,litert-noxnn,onnxruntime,keras --threads 1,2 --runs 300 && \
		$(EDGECNN) benchmark $(BENCH_RUN) --runtime litert,onnxruntime --device pi4 --runs 300 --out $(BENCH_RUN)/bench/pi4_baseline && \
		$(EDGECNN) benchmark $(BENCH_RUN) --runtime litert --emulate pi4,pi5 --threads 1,4 --runs 300 --out $(BENCH_RUN)/bench/emulated && \
		if ls $(BENCH_RUN)/export/*_mixed.tflite >/dev/null 2>&1; then \
			$(EDGECNN) benchmark $(BENCH_RUN)/export/*_fp32.tflite $(BENCH_RUN)/export/*_int8.tflite \
				$(BENCH_RUN)/export/*_mixed.tflite --interleave --rounds 9 --runs 200 --out $(BENCH_RUN)/bench/mixed_interleaved; \
		fi; \
	else \
		echo "make bench: no exported run under runs/, run benchmark skipped ('make demo' or 'edgecnn export' makes one; or BENCH_RUN=runs/<model>/<run>)"; \
	fi
	@art="$(BENCH_ART)"; art="$${art:-$$(ls bench/.cache/mobilenetv2_e/*_int8.tflite 2>/dev/null | head -n 1)}"; \
	test -n "$$art" || { echo "make bench: no TFLite model for the harness-overhead check"; exit 1; }; \
	$(PY) -c 'import sys; from edgecnn.measure.timing import format_overhead, measure_overhead; print(format_overhead(measure_overhead(sys.argv[1], 4000, rounds=40)))' "$$art"

clean:
	rm -rf $(VENV) $(MP_VENV) build *.egg-info

# ---------------------------------------------------------------- Android app: JVM unit tests
# The app's pure-Java classes (android_app/.../core: preprocessing, postprocessing, spec reader)
# compiled with Debian's JDK against Java 8's API (what Android offers), and their JUnit tests,
# including the golden vectors written by tools/make_golden.py. No Android SDK needed.
ANDROID_CORE  := android_app/app/src/main/java/dev/edgecnn/sample/core
ANDROID_TESTS := android_app/app/src/test/java/dev/edgecnn/sample/core
JAVA_BUILD    := build/java
JUNIT_CP      := /usr/share/java/junit4.jar:/usr/share/java/hamcrest-core.jar
# org.json as Android ships it (the app uses the platform's; the JVM tests Debian's libandroid-json-java)
ORG_JSON_JAR  := /usr/share/java/com.android.json.jar

java-test: test-deps
	@rm -rf $(JAVA_BUILD) && mkdir -p $(JAVA_BUILD)/main $(JAVA_BUILD)/test
	javac --release 8 -Xlint:all -Xlint:-options -Werror -cp $(ORG_JSON_JAR) -d $(JAVA_BUILD)/main $(ANDROID_CORE)/*.java
	javac -Xlint:all -Werror -cp $(JAVA_BUILD)/main:$(JUNIT_CP):$(ORG_JSON_JAR) -d $(JAVA_BUILD)/test $(ANDROID_TESTS)/*.java
	java -cp $(JAVA_BUILD)/main:$(JAVA_BUILD)/test:android_app/app/src/test/resources:$(JUNIT_CP):$(ORG_JSON_JAR) \
		org.junit.runner.JUnitCore $(patsubst $(ANDROID_TESTS)/%.java,dev.edgecnn.sample.core.%,$(wildcard $(ANDROID_TESTS)/*Test.java))

# arm-root (part of `make test`, which counts tiny models on emulated cores in it): an arm64 Debian
# root for qemu-aarch64 -L (debootstrap --foreign + dpkg-deb -x, no chroot; cached in .arm-root/),
# with the aarch64 LiteRT and numpy wheels; installs qemu-user, debootstrap and gcc where missing.
# arm-check (not part of `make test`): the light install in that root, on the Pi 4 and Pi 5 cores
# under qemu-user, gives x86-64's int8 results (docs/arm-check.md).
arm-root: install
	bash tools/arm_root.sh

arm-check: install
	bash tools/arm_check.sh
