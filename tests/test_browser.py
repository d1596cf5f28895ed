"""A real Chromium on `harness ui NAME` for a small finished and analysed study: the runs table
lists the study's trial runs (not the analysis run) by readable name with the final accuracies as
columns; a run's route opens on its per-epoch metric charts in MLflow's model-training view.
Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them)."""

from __future__ import annotations

import os
import shutil

import pytest
import ray
from mlflow.tracking import MlflowClient
from study_helpers import smoke_space
from test_ui import start_ui

from harness.cli import main
from harness.study.run_schema import RUN_KIND_ANALYSIS, TAG_RUN_KIND
from harness.study.runner import run_study
from harness.study.tracking import run_name
from harness.ui import run_path

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and DRIVER) and not os.environ.get("CI"):
    pytest.skip("chromium and chromedriver not installed (apt-get install chromium "
                "chromium-driver); CI installs them", allow_module_level=True)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1800,2400"):  # tall: every chart of a run on screen
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def _wait_for_text(driver, *texts: str, timeout: float = 90) -> str:
    """The page's text once it shows all `texts`; on a timeout, an error naming the missing."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(d):
        body = d.find_element("tag name", "body").text
        return body if all(t in body for t in texts) else False

    try:
        return WebDriverWait(driver, timeout, poll_frequency=1).until(shown)
    except TimeoutException:
        body = driver.find_element("tag name", "body").text
        missing = [t for t in texts if t not in body]
        raise AssertionError(f"{driver.current_url} never showed {missing}; it shows: "
                             f"{body[:1500]!r}") from None


def test_the_ui_opens_on_the_studys_trials_and_a_run_shows_its_epoch_charts(tmp_path, browser):
    _, spec = smoke_space(tmp_path, name="uistudy", seeds=[0], epochs=2,
                          model={"family": "dense", "depths": [2]})
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    try:
        outcome = run_study(spec, tracking_uri=uri, storage_path=str(tmp_path / "results"))
    finally:
        ray.shutdown()
    assert (outcome.finished, outcome.errored) == (2, 0)
    assert main(["analyze", "uistudy", "--tracking-uri", uri, "--out", str(tmp_path / "a")]) == 0
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("uistudy")
    (analysis,) = client.search_runs([experiment.experiment_id],
                                     f"tags.{TAG_RUN_KIND} = '{RUN_KIND_ANALYSIS}'")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])
            if r.info.run_id != analysis.info.run_id}
    assert sorted(runs) == ["Adam dense2 seed 0", "L-Adam dense2 seed 0"]
    assert all(run_name(r.data.params) == name for name, r in runs.items())

    ui, port, url = start_ui(tmp_path, "uistudy", "--tracking-uri", uri)
    try:
        browser.get(url)
        table = _wait_for_text(browser, *runs, "2 matching runs", "test_accuracy",
                               "val_accuracy", "optimizer")
        browser.save_screenshot(str(tmp_path / "runs.png"))
        assert analysis.info.run_name not in table
        for run in runs.values():  # the table shows each final test accuracy (cut to fit)
            assert repr(run.data.metrics["test_accuracy"])[:6] in table

        run = runs["L-Adam dense2 seed 0"]
        history = sorted(client.get_metric_history(run.info.run_id, "val_accuracy"),
                         key=lambda m: m.step)
        assert [m.step for m in history] == [1, 2]
        browser.get(f"http://127.0.0.1:{port}/" + run_path(uri, "uistudy", run.info.run_name))
        # one chart per per-epoch metric over the step (= epoch) axis, on the run's own page
        _wait_for_text(browser, "Model metrics", "Step", "L-Adam dense2 seed 0 (val_accuracy)",
                       "L-Adam dense2 seed 0 (train_loss)")
        browser.save_screenshot(str(tmp_path / "run.png"))
        # the experiment in the breadcrumb leads back to its runs (GenAI's view: "Evaluations")
        crumb = browser.find_element("css selector",
                                     "[data-testid=experiment-observatory-link-runs]")
        assert crumb.text == "Runs"
        print(f"screenshots: {tmp_path / 'runs.png'}, {tmp_path / 'run.png'}")
    finally:
        ui.terminate()
        ui.wait(timeout=30)
