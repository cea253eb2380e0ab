"""fleet.campaign: given login anomalies of many devices, when ingest stores them, then one
anomaly per attacker source reaching N devices, updated by count as it spreads."""
from routerwatch_collector.fleet.campaign import source_keys
from routerwatch_collector.ingest import Ingest

from fleet_messages import T0, device_name, feed, login_anomaly

ATTACKER = "45.155.205.17"        # global (documentation ranges are not)


def campaigns(store):
    return store.query_anomalies(kind="fleet.campaign", limit=1000)


def test_source_keys_group_ipv4_and_ipv6_and_skip_private():
    assert source_keys("45.155.205.17") == [("45.155.205.17", None),
                                            ("45.155.205.0/24", "45.155.205.17")]
    assert source_keys("2a01:4f8:1:2:3:4:5:6") == [
        ("2a01:4f8:1:2::/64", None), ("2a01:4f8:1::/48", "2a01:4f8:1:2::/64")]
    assert source_keys("::ffff:45.155.205.17")[0] == ("45.155.205.17", None)
    for private in ("192.168.1.10", "10.0.0.1", "fe80::1", "127.0.0.1", "203.0.113.7",
                    "not an address", "1" * 100, None, 7):
        assert source_keys(private) == []


def test_one_source_on_five_devices_is_one_campaign_updated_by_count(open_test_store):
    store = open_test_store()
    ingest = Ingest(store)
    feed(ingest, [login_anomaly(device_name(n), 1, ATTACKER) for n in range(4)], T0)
    assert campaigns(store) == []
    new = feed(ingest, [login_anomaly(device_name(4), 1, ATTACKER, kind="login.spray")], T0 + 60)
    raised = [a for a in new if a.kind == "fleet.campaign"]
    assert len(raised) == 1
    (campaign,) = campaigns(store)
    assert campaign.origin == "collector" and campaign.device == "fleet"
    assert campaign.evidence["source"] == ATTACKER
    assert campaign.evidence["devices"] == 5 and campaign.count == 5
    assert sorted(campaign.evidence["device_list"]) == [device_name(n) for n in range(5)]
    assert sorted(campaign.evidence["kinds"]) == ["login.bruteforce", "login.spray"]
    assert campaign.evidence["first"] == T0 and campaign.evidence["last"] == T0 + 60
    # it spreads: the same anomaly row, a higher count; no second anomaly
    new = feed(ingest, [login_anomaly(device_name(n), 1, ATTACKER) for n in range(5, 9)],
               T0 + 120)
    assert [a for a in new if a.kind == "fleet.campaign"] == []
    (campaign,) = campaigns(store)
    assert campaign.count == 9 and campaign.evidence["devices"] == 9


def test_the_same_device_again_and_lan_sources_do_not_count(open_test_store):
    store = open_test_store()
    ingest = Ingest(store)
    feed(ingest, [login_anomaly(device_name(0), seq, ATTACKER) for seq in range(1, 20)], T0)
    feed(ingest, [login_anomaly(device_name(n), 1, "192.168.1.100") for n in range(1, 30)], T0)
    feed(ingest, [login_anomaly(device_name(n), 2, "45.1.1.1", inside=True)
                  for n in range(1, 30)], T0)
    assert campaigns(store) == []


def test_outside_the_window_is_not_a_campaign_and_a_later_wave_is_a_new_one(open_test_store):
    store = open_test_store()
    ingest = Ingest(store)
    day = 86400
    for n in range(8):       # one device a day: never 5 within 24 h
        feed(ingest, [login_anomaly(device_name(n), 1, ATTACKER)], T0 + n * day)
    assert campaigns(store) == []
    feed(ingest, [login_anomaly(device_name(n), 2, ATTACKER) for n in range(5)], T0 + 9 * day)
    assert len(campaigns(store)) == 1
    feed(ingest, [login_anomaly(device_name(n), 3, ATTACKER) for n in range(5)], T0 + 11 * day)
    assert len(campaigns(store)) == 2


def test_many_addresses_of_one_range_make_the_range_a_campaign(open_test_store):
    store = open_test_store()
    ingest = Ingest(store)
    # a botnet rotating through a /24: no address reaches 5 devices, the range does
    feed(ingest, [login_anomaly(device_name(n), 1, "45.155.205.%d" % (10 + n % 6))
                  for n in range(12)], T0)
    found = {a.evidence["source"]: a for a in campaigns(store)}
    assert set(found) == {"45.155.205.0/24"}
    assert found["45.155.205.0/24"].evidence["addresses"] == 6
    assert found["45.155.205.0/24"].evidence["devices"] == 12


def test_two_collectors_on_one_store_raise_one_campaign(open_test_store):
    first, second = Ingest(open_test_store()), Ingest(open_test_store())
    feed(first, [login_anomaly(device_name(n), 1, ATTACKER) for n in range(3)], T0)
    feed(second, [login_anomaly(device_name(n), 1, ATTACKER) for n in range(3, 6)], T0 + 1)
    feed(first, [login_anomaly(device_name(n), 1, ATTACKER) for n in range(6, 7)], T0 + 2)
    (campaign,) = campaigns(open_test_store())
    assert campaign.count == 7
