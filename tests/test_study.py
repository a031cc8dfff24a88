"""One study end to end: outputs written, numbers consistent, reproducible by seed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gridplan.core.errors import ConfigError
from gridplan.outputs import write_study
from gridplan.study import load_study_config, run

STUDY = """
name = "short"
feeder = "ca-residential"
year = 2032
base_year = 2026
seed = 5

[period]
kind = "range"
start = "2017-09-04"
end = "2017-09-06"

[fleet]
evs_per_household = 0.8
v2g_capable_share = 0.8
v2g_enrolled_share = 0.8
"""


HORIZON = STUDY.replace(
    "seed = 5",
    "seed = 5\n[horizon]\nstart = 2028\nend = 2036\ndraws = 4\nconfidence = 0.75",
).replace("evs_per_household = 0.8", "evs_per_household = 0.5")


def run_and_write(path, folder):
    """Run a study and write its folder; the result and the folder."""
    result = run(path)
    out = folder / result.config.name
    write_study(result, out)
    return result, out


@pytest.fixture(scope="module")
def horizon_written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("horizon")
    path = folder / "h.toml"
    path.write_text(HORIZON, encoding="utf-8")
    return run_and_write(path, folder / "out")


@pytest.fixture(scope="module")
def horizon_result(horizon_written):
    return horizon_written[0]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    path = folder / "short.toml"
    path.write_text(STUDY, encoding="utf-8")
    return run_and_write(path, folder / "out")


@pytest.fixture(scope="module")
def result(written):
    return written[0]


def test_writes_every_output(written):
    result, out = written
    expected = {
        "config.toml",
        "summary.json",
        "assets.csv",
        "evs.csv",
        "timeseries.csv",
        "critical_asset_loading.png",
    }
    assert expected <= {p.name for p in out.iterdir()}
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["period"]["steps"] == 2 * 96
    assert summary["fleet"]["evs"] == result.fleet.n_ev > 0
    assert summary["critical_asset"]["asset_id"] in result.feeder.assets.index
    assets = pd.read_csv(out / "assets.csv")
    assert len(assets) == len(result.feeder.assets)
    assert (out / "critical_asset_loading.png").read_bytes()[:4] == b"\x89PNG"
    # the resolved config is a valid study config again
    assert load_study_config(out / "config.toml").name == "short"


def test_numbers_are_consistent(result):
    a = result.assets
    # EV charging only adds load: the charging case is never below the no-EV case
    assert (a.peak_loading_pct_charging >= a.peak_loading_pct_base - 1e-9).all()
    over = a.peak_loading_pct_charging > a.limit_pct
    assert over.any(), "the study case should overload some service transformer"
    assert (a.hours_over_limit_charging[over] > 0).all()
    # overload energy = sum of excess over the limit x rating x step
    crit = result.summary.critical_asset.asset_id
    col = result.feeder.assets.index.get_loc(crit)
    load = result.loading_pct["charging"][:, col]
    limit, rating = a.limit_pct[crit], a.rating_kva[crit]
    excess = np.clip(load - limit, 0, None).sum() / 100 * rating * 0.25
    assert a.overload_energy_kvah_charging[crit] == pytest.approx(excess)
    # the upgrade picked carries the peak of the year of need (here the one planning year)
    # plus the planning margin, or is flagged insufficient (largest option given)
    margin = result.config.valuation.upgrade_margin
    carries = a.new_rating_kva * a.limit_pct / 100 >= a.peak_kva_charging * (1 + margin) - 1e-6
    assert (carries[over] == a.upgrade_sufficient[over]).all()
    assert (a.new_rating_kva[over & ~carries] == 100.0).all()  # the largest trafo option


def test_deferral_value_closed_form(horizon_result):
    """Recompute year of need, deferral and value from the need flags and closed forms."""
    r = horizon_result
    h, cfg = r.horizon, r.config
    val = cfg.valuation
    q = (1 + val.escalation_rate) / (1 + val.discount_rate)
    end = int(h.years[-1])
    c_chg, c_v2g = h.cases.index("charging"), h.cases.index("v2g")
    checked = 0
    for a, asset_id in enumerate(h.asset_ids):
        row = r.assets.loc[asset_id]
        years_without, years_with = [], []
        for d in range(h.need.shape[1]):
            hits = [y for i, y in enumerate(h.years) if h.need[i, d, c_chg, a]]
            hits_v = [y for i, y in enumerate(h.years) if h.need[i, d, c_v2g, a]]
            years_without.append(hits[0] if hits else None)
            years_with.append(hits_v[0] if hits_v else None)
        needed = sorted(y for y in years_without if y is not None)
        if len(needed) <= h.need.shape[1] // 2:
            assert np.isnan(row.year_of_need_charging_p50) or row.year_of_need_charging_p50 > 0
            continue
        # lower median over draws (draws without a need count as after the horizon)
        assert row.year_of_need_charging_p50 == needed[(h.need.shape[1] - 1) // 2]
        deferrals = sorted(
            (w if w is not None else end + 1) - wo
            for wo, w in zip(years_without, years_with, strict=True)
            if wo is not None
        )
        # reached in at least `confidence` of draws: at most (1 - c) N draws fall below it
        k = min(len(deferrals) - 1, int(np.floor((1 - cfg.horizon.confidence) * len(deferrals))))
        assert sum(x < deferrals[k] for x in deferrals) <= (1 - cfg.horizon.confidence) * len(
            deferrals
        )
        assert row.deferral_years_v2g == deferrals[k]
        cost = row.cost_usd * (1 + val.escalation_rate) ** (val.dollar_year - row.dollar_year)
        if not np.isfinite(cost):
            continue
        t1 = max(row.year_of_need_charging_p50 - val.dollar_year, 0)
        t2 = max(t1 + row.deferral_years_v2g, 0)
        expected = cost * (q**t1 - q**t2)
        assert row.deferral_value_usd_v2g == pytest.approx(expected, rel=1e-9, abs=1e-6)
        checked += 1
    assert checked > 0


def test_same_seed_same_result(result, tmp_path):
    path = tmp_path / "short.toml"
    path.write_text(STUDY, encoding="utf-8")
    again = run(path)
    pd.testing.assert_frame_equal(again.assets, result.assets)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        (('feeder = "ca-residential"', 'feeder = "no-such-feeder"'), "feeder"),
        (('name = "short"', ""), "name"),
        (("seed = 5", "sede = 5"), "did you mean 'seed'"),
        (("year = 2032", 'year = "soon"'), "year"),
        (("evs_per_household = 0.8", "evs_per_household = -1"), "fleet.evs_per_household"),
        (('kind = "range"', 'kind = "month"'), "period.kind"),
        (('end = "2017-09-06"', 'end = "2017-09-03"'), "period"),
        (("[fleet]", "[fleet\n"), "malformed TOML"),
    ],
)
def test_bad_study_config(tmp_path, patch, field):
    path = tmp_path / "bad.toml"
    path.write_text(STUDY.replace(*patch), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        run(path)
    message = str(info.value)
    assert str(path) in message and field in message
    assert "\n" not in message


def test_evs_downstream(result):
    a = result.assets
    trafos = a[a.kind == "trafo"]
    # every EV sits behind exactly one service transformer
    assert trafos.evs_downstream.sum() == result.fleet.n_ev
    assert trafos.v2g_enrolled_evs_downstream.sum() == result.fleet.v2g_enrolled.sum()
    # the feeder head carries them all
    head = a[a.name == "Trunk 1"].iloc[0]
    assert head.evs_downstream == result.fleet.n_ev
    # assets without enrolled EVs downstream get no V2G relief at their peak
    no_v2g = a[(a.v2g_enrolled_evs_downstream == 0) & (a.kind == "trafo")]
    # (up to the small voltage effect of exports elsewhere on the feeder)
    assert (no_v2g.peak_loading_pct_v2g >= 0.99 * no_v2g.peak_loading_pct_charging).all()


def test_zones_relative_to_study_and_checked_first(tmp_path):
    import json

    zone = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"multiplier": 3},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[-120, 36], [-119, 36], [-119, 37], [-120, 37], [-120, 36]]],
                },
            }
        ],
    }
    (tmp_path / "zones.geojson").write_text(json.dumps(zone), encoding="utf-8")
    body = STUDY.replace("[fleet]", '[fleet]\nzones = "zones.geojson"')
    path = tmp_path / "zoned.toml"
    path.write_text(body, encoding="utf-8")
    zoned = run(path)
    # the zone covers the whole feeder: three times the adoption
    assert zoned.fleet.n_ev == pytest.approx(3 * 0.8 * zoned.feeder.households.sum(), rel=0.15)
    (tmp_path / "zones.geojson").write_text("{broken", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON") as info:
        load_study_config(path)
    assert "zones.geojson" in str(info.value)


def test_horizon_outputs(horizon_written):
    r, out = horizon_written
    h = r.horizon
    assert list(h.years) == list(range(2028, 2037))
    assert h.cases == ["base", "charging", "v1g", "v2g", "v2g_perfect"]
    assert h.need.shape == (9, 4, 5, len(r.feeder.assets))
    # adoption and load grow: EV charging needs never fewer assets than no EVs
    assert h.need[:, :, 1].sum() >= h.need[:, :, 0].sum()
    # probability of need by year is non-decreasing
    for (_, _), group in r.needs.groupby(["asset_id", "case"]):
        by_year = group.sort_values("year").need_by_year_probability.to_numpy()
        assert (np.diff(by_year) >= -1e-12).all()
    v2g = r.needs[r.needs.case == "v2g"]
    np.testing.assert_allclose(v2g.firmness, 1 - v2g.need_probability)
    files = {p.name for p in out.iterdir()}
    assert {"needs.csv", "assets.csv", "valuation.csv", "summary.json"} <= files
    valuation = pd.read_csv(out / "valuation.csv")
    assert len(valuation) == len(r.assets)
    assert {"cost_source", "deferral_value_usd_v2g", "year_of_need_charging_p50"} <= set(
        valuation.columns
    )
    s = json.loads((out / "summary.json").read_text())
    assert s["horizon"] == {**s["horizon"], "start": 2028, "end": 2036, "draws": 4}
    # the need is characterized where one exists
    a = r.assets[r.assets.year_of_need_charging_p50.notna()]
    assert len(a) > 0
    assert (a.peak_excess_kw > 0).all() and (a.v2g_required_kw > 0).all()
    assert (a.longest_excess_h > 0).all() and (a.excess_hours.str.len() > 0).all()


def test_no_enrollment_means_no_deferral(tmp_path):
    body = HORIZON.replace("v2g_enrolled_share = 0.8", "v2g_enrolled_share = 0.0")
    path = tmp_path / "none.toml"
    path.write_text(body, encoding="utf-8")
    r = run(path)
    h = r.horizon
    np.testing.assert_array_equal(h.need[:, :, h.case("v2g")], h.need[:, :, h.case("charging")])
    with_need = r.assets.year_of_need_charging_p50.notna()
    assert with_need.any()
    assert (r.assets.deferral_years_v2g[with_need] == 0).all()
    assert (r.assets.deferral_value_usd_v2g[with_need] == 0).all()


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ("[horizon]\nstart = 2030\nend = 2028\n", "horizon"),
        ("[horizon]\nconfidence = 1.5\n", "horizon.confidence"),
        ("[horizon]\nconfidence = 0\n", "horizon.confidence"),
        ("[load_growth]\nfactors = { 2030 = -0.5 }\n", "load_growth.factors"),
        ("[load_growth]\nrate = 0.01\nfactors = { 2030 = 1.1 }\n", "not both"),
        ("[horizon]\nstart = 2020\nend = 2030\n", "before base_year"),
        ("[criteria]\nvm_min_pu = 1.2\n", "criteria.vm_min_pu"),
    ],
)
def test_bad_horizon_input(tmp_path, patch, field):
    path = tmp_path / "bad.toml"
    path.write_text(STUDY.replace("[period]", patch + "[period]", 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=field) as info:
        load_study_config(path)
    assert str(path) in str(info.value)


def test_valuation_end_to_end(tmp_path):
    """Hand-worked: gross value, annualization, ratepayer net, and the tornado's base."""
    body = HORIZON.replace("draws = 4", "draws = 2") + (
        "\n[program]\ncharging_energy_price_usd_per_kwh = 0.3\n"
        'charging_energy_price_source = "test"\nupfront_incentive_usd_per_customer = 1000\n'
        "\n[sensitivity]\nenabled = true\ndraws = 1\n"
    )
    path = tmp_path / "val.toml"
    path.write_text(body, encoding="utf-8")
    r, out = run_and_write(path, tmp_path / "out")
    written = {p.name for p in out.iterdir()}
    assert {"economics.csv", "sensitivity.csv", "valuation.csv"} <= written
    econ = r.economics.loc["v2g"]
    a = r.assets
    with_need = a.year_of_need_charging_p50.notna()
    gross = a.deferral_value_usd_v2g[with_need].sum()
    assert econ.deferral_value_usd == pytest.approx(gross)
    rate, n_years = r.config.valuation.discount_rate, len(r.horizon.years)
    annuity = (1 - (1 + rate) ** -n_years) / rate
    assert econ.annual_deferral_value_usd == pytest.approx(gross / annuity)
    # utility pays only the upfront incentives (performance and capacity 0; ELRP not
    # utility-funded), each when the customer enrolls: the yearly increase of the median
    # enrolled count, discounted from the start of that year to the dollar year
    years = np.asarray(r.horizon.years)
    enrolled = np.maximum.accumulate(np.median(r.horizon.n_enrolled, axis=1))
    new = np.diff(np.r_[0.0, enrolled])
    t = years - r.config.valuation.dollar_year
    incentives = sum(1000 * n / (1 + rate) ** ti for n, ti in zip(new, t, strict=True))
    assert incentives < 1000 * enrolled[-1]  # paid from 2028: less than at the dollar year
    assert econ.ratepayer_cost_pv_usd == pytest.approx(incentives)
    assert econ.ratepayer_net_benefit_pv_usd == pytest.approx(gross - incentives)
    assert r.summary.economics["v2g"].deferral_value_usd == pytest.approx(gross, abs=1e-5)
    tornado = r.sensitivity
    assert set(tornado.parameter) == {
        "discount_rate", "escalation_rate", "upgrade_cost", "load_growth", "ev_adoption",
        "enrollment",
    }  # fmt: skip
    assert (np.diff(tornado.swing.to_numpy()) <= 1e-9).all()
    # the net benefit is linear in the upgrade cost: equal slopes below and above base
    row = tornado[tornado.parameter == "upgrade_cost"].iloc[0]
    slope_low = (row.result_base - row.result_low) / (1 - row.low_value)
    slope_high = (row.result_high - row.result_base) / (row.high_value - 1)
    assert slope_low == pytest.approx(slope_high, rel=1e-9, abs=1e-6)
    assert set(tornado.columns) >= {"result_low", "result_base", "result_high", "swing"}


def test_escalation_above_discount_is_noted(tmp_path):
    body = STUDY + "\n[valuation]\ndiscount_rate = 0.02\nescalation_rate = 0.05\n"
    path = tmp_path / "esc.toml"
    path.write_text(body, encoding="utf-8")
    r = run(path)
    assert any("exceeds the discount rate" in note for note in r.summary.notes)
    values = r.assets.deferral_value_usd_v2g[r.assets.deferral_years_v2g > 0]
    assert (values <= 0).all()


def test_detail_is_the_critical_assets_median_draw(horizon_result):
    r = horizon_result
    h = r.horizon
    y = list(h.years).index(r.config.year)
    a = list(h.asset_ids).index(r.summary.critical_asset.asset_id)
    peaks = h.peak_loading_pct[y, :, h.case("charging"), a]
    d = r.summary.detail_draw
    assert (peaks < peaks[d]).sum() <= (len(peaks) - 1) // 2 <= (peaks <= peaks[d]).sum() - 1
    # the detail arrays are that draw's
    assert np.nanmax(r.loading_pct["charging"][:, a]) == pytest.approx(peaks[d])


def test_notes_reach_the_report(tmp_path):
    body = STUDY + "\n[valuation]\ndiscount_rate = 0.02\nescalation_rate = 0.05\n"
    path = tmp_path / "esc.toml"
    path.write_text(body, encoding="utf-8")
    _, out = run_and_write(path, tmp_path / "out")
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "exceeds the discount rate" in report


def test_more_enrollment_never_reduces_deferral(tmp_path):
    """Monotonicity (issue 6): with nested enrollment over fixed draws, more enrolled EVs
    give at least as many deferral years on average (v2g_peak_shave)."""
    from gridplan.planning.deferral import deferral_per_draw

    base = (
        HORIZON.replace("draws = 4", "draws = 3")
        + '\n[dispatch]\nv2g = "v2g_peak_shave"\n[targeting]\nenabled = false\n'
    )
    mean_deferral = []
    for share in (0.1, 0.5, 1.0):
        path = tmp_path / f"e{share}.toml"
        path.write_text(
            base.replace("v2g_enrolled_share = 0.8", f"v2g_enrolled_share = {share}"),
            encoding="utf-8",
        )
        r = run(path)
        h = r.horizon
        deferral, _ = deferral_per_draw(
            h.year_of_need("charging"), h.year_of_need("v2g"), int(h.years[-1])
        )
        mean_deferral.append(np.nanmean(deferral))
    assert mean_deferral[0] <= mean_deferral[1] + 1e-9 <= mean_deferral[2] + 2e-9
    assert mean_deferral[2] > mean_deferral[0]


def test_workers_give_the_same_result(horizon_result, tmp_path):
    """Units evaluated in two worker processes equal the serial run (seeded per draw)."""
    path = tmp_path / "h.toml"
    path.write_text(HORIZON, encoding="utf-8")
    parallel = run(path, workers=2)
    a, b = parallel.horizon, horizon_result.horizon
    for name in ("peak_loading_pct", "hours_over_limit", "need", "min_vm_pu", "requirement_kwh"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(a.n_ev, b.n_ev)
    pd.testing.assert_frame_equal(parallel.assets, horizon_result.assets)
    assert parallel.summary.screening == horizon_result.summary.screening


def test_bad_workers_is_a_clear_error(tmp_path):
    path = tmp_path / "h.toml"
    path.write_text(HORIZON, encoding="utf-8")
    with pytest.raises(ConfigError, match="workers"):
        run(path, workers=-1)


def test_screening_is_used_where_it_pays_and_the_summary_says_why():
    from gridplan.core.config import validate
    from gridplan.study.config import StudyConfig
    from gridplan.study.simulate import (
        SCREENING_MAX_NODES,
        SCREENING_MIN_DRAWS,
        SCREENING_MIN_STEPS,
        use_screening,
    )

    def config(screening: bool, draws: int = SCREENING_MIN_DRAWS) -> StudyConfig:
        return validate(
            StudyConfig,
            {
                "name": "s",
                "feeder": "lv-semiurban",
                "horizon": {"screening": screening, "draws": draws},
            },
        )

    assert use_screening(config(True), 40, 35_136) == (True, "on")
    on, why = use_screening(config(True, SCREENING_MIN_DRAWS - 1), 40, 35_136)
    assert not on and "draws" in why
    on, why = use_screening(config(True), SCREENING_MAX_NODES + 1, 35_136)
    assert not on and "non-slack nodes" in why
    on, why = use_screening(config(True), 40, SCREENING_MIN_STEPS - 1)
    assert not on and "steps" in why
    on, why = use_screening(config(False), 40, 35_136)
    assert not on and "horizon.screening = false" in why


def test_upgrade_is_sized_for_the_year_of_need_plus_margin(horizon_result):
    from gridplan.study.tables import horizon_peak_kva, need_year_peak_kva

    r = horizon_result
    a, h = r.assets, r.horizon
    need = a.year_of_need_charging_p50.notna()
    assert need.any()
    sizing = need_year_peak_kva(a, h)
    horizon = horizon_peak_kva(a, h)
    assert (sizing[need] <= horizon[need] + 1e-9).all()
    # by hand for one asset: median over draws of its peak in its P50 year of need
    asset = a.index[need][0]
    col = list(h.asset_ids).index(asset)
    y = list(h.years).index(int(a.year_of_need_charging_p50[asset]))
    expected = np.median(h.peak_loading_pct[y, :, h.case("charging"), col]) / 100
    assert sizing[asset] == pytest.approx(expected * a.rating_kva[asset])
    margin = r.config.valuation.upgrade_margin
    fits = a.new_rating_kva * a.limit_pct / 100 >= sizing * (1 + margin) - 1e-6
    assert (fits[need] == a.upgrade_sufficient[need]).all()


def test_summary_says_what_the_period_stands_for():
    import pandas as pd

    from gridplan.core.config import validate
    from gridplan.study.config import StudyConfig
    from gridplan.study.summary import _period_notes

    program = {"charging_energy_price_usd_per_kwh": 0.3, "charging_energy_price_source": "t"}
    week = pd.date_range("2017-09-02", periods=672, freq="15min")
    base = {"name": "x", "feeder": "lv-semiurban", "program": program}
    plain = validate(StudyConfig, base)
    assert "count only the 7 simulated days" in _period_notes(plain, week, 0.25)[0]
    scaled = validate(StudyConfig, {**base, "period": {"represents_days": 120}})
    assert "to 120 days" in _period_notes(scaled, week, 0.25)[0]
    no_program = validate(StudyConfig, {"name": "x", "feeder": "lv-semiurban"})
    assert _period_notes(no_program, week, 0.25) == []


def test_the_critical_asset_is_described_by_one_draw(horizon_result):
    """Headline, table and figures of the critical asset agree (issue 20): its figures come
    from its own median draw, the headline states that draw's peaks and EV counts."""
    from gridplan.grid.topology import downstream_buses

    r = horizon_result
    crit = r.summary.critical_asset
    col = r.feeder.assets.index.get_loc(crit.asset_id)
    # the detail loading series is that draw's: its peaks are the headline's, per case
    for case, peak in crit.peak_loading_pct.items():
        if case in r.loading_pct:
            assert np.nanmax(r.loading_pct[case][:, col]) == pytest.approx(peak, abs=1e-6)
    # the charging peak is the table's lower median over draws
    assert crit.peak_loading_pct["charging"] == pytest.approx(
        r.assets.peak_loading_pct_charging[crit.asset_id]
    )
    # EVs downstream in the headline are those of the figures' fleet
    below = np.isin(r.fleet.bus, downstream_buses(r.feeder)[crit.asset_id])
    assert crit.evs_downstream == below.sum()
    assert crit.v2g_enrolled_evs_downstream == (below & r.fleet.v2g_enrolled).sum()
