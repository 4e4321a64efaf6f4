"""The classroom address plan: determinism, no overlaps, stability when
students come and go, refusal when the range is too small."""

import ipaddress
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "filter"))
import classroom  # noqa: E402

RANGE = "127.20.0.0/24"  # .1-.254 usable: 63 pools of 4


def students(count, prefix="student"):
    return [f"{prefix}{n:02d}" for n in range(1, count + 1)]


def addresses(entry):
    first, last = (int(ipaddress.ip_address(a)) for a in entry["address_range"].split("-"))
    return set(range(first, last + 1))


def assert_disjoint(plan):
    seen = {}
    for student, entry in plan.items():
        for address in addresses(entry):
            assert address not in seen, f"{student} and {seen[address]} share {ipaddress.ip_address(address)}"
            seen[address] = student


def test_every_student_gets_a_pool_of_the_asked_size_with_the_ingress_ip_first():
    plan = classroom.address_plan(students(30), RANGE, pool_size=4)
    assert sorted(plan) == students(30)
    for entry in plan.values():
        assert len(addresses(entry)) == 4
        assert entry["ingress_ip"] == entry["address_range"].split("-")[0]
        assert ipaddress.ip_address(entry["ingress_ip"]) in ipaddress.ip_network(RANGE)
    assert plan["student01"] == {
        "subnet": "default",
        "slot": 0,
        "address_range": "127.20.0.1-127.20.0.4",
        "ingress_ip": "127.20.0.1",
    }
    assert_disjoint(plan)


def test_the_plan_is_deterministic_whatever_the_roster_order():
    roster = students(25)
    first = classroom.address_plan(roster, RANGE)
    assert classroom.address_plan(list(reversed(roster)), RANGE) == first
    assert classroom.address_plan(roster, RANGE) == first


def test_adding_a_student_that_sorts_first_moves_nobody():
    plan = classroom.address_plan(students(10), RANGE)
    grown = classroom.address_plan(["aaron", *students(10)], RANGE, previous=plan)
    assert {k: v for k, v in grown.items() if k != "aaron"} == plan
    assert_disjoint(grown)
    # Without the recorded plan the same roster would shift everyone: the record is what keeps them.
    assert classroom.address_plan(["aaron", *students(10)], RANGE)["student01"] != plan["student01"]


def test_removing_a_student_moves_nobody_and_a_newcomer_reuses_the_freed_pool():
    plan = classroom.address_plan(students(10), RANGE)
    without_five = [s for s in students(10) if s != "student05"]
    shrunk = classroom.address_plan(without_five, RANGE, previous=plan)
    assert shrunk == {k: v for k, v in plan.items() if k != "student05"}
    regrown = classroom.address_plan([*without_five, "zoe"], RANGE, previous=shrunk)
    assert regrown["zoe"]["address_range"] == plan["student05"]["address_range"]
    assert {k: v for k, v in regrown.items() if k != "zoe"} == shrunk


def test_pools_never_contain_node_addresses():
    reserved = ["127.20.0.6", "127.20.0.20-127.20.0.22"]
    plan = classroom.address_plan(students(8), RANGE, reserved=reserved)
    assert_disjoint(plan)
    taken = set().union(*(addresses(e) for e in plan.values()))
    for item in reserved:
        first, last = classroom.parse_address_range(item)
        assert not taken & set(range(int(first), int(last) + 1))
    assert plan["student02"]["address_range"] == "127.20.0.9-127.20.0.12"  # block .5-.8 holds a node


def test_a_node_address_appearing_inside_a_recorded_pool_is_refused_not_moved():
    plan = classroom.address_plan(students(3), RANGE)
    with pytest.raises(AnsibleFilterError, match="student02.*reserved/node address"):
        classroom.address_plan(students(3), RANGE, reserved=["127.20.0.7"], previous=plan)


def test_refuses_a_range_too_small_and_says_how_many_fit():
    with pytest.raises(AnsibleFilterError, match=r"too small.*holds 2 usable pools of 4 addresses, 3 students"):
        classroom.address_plan(students(3), "127.20.0.1-127.20.0.8")
    # Reserved addresses count against the room.
    with pytest.raises(AnsibleFilterError, match="too small"):
        classroom.address_plan(students(2), "127.20.0.1-127.20.0.8", reserved=["127.20.0.2"])
    # Exactly full is fine.
    assert len(classroom.address_plan(students(2), "127.20.0.1-127.20.0.8")) == 2


def test_several_ranges_in_one_subnet_are_used_in_order_and_appending_one_moves_nobody():
    small = ["127.20.0.1-127.20.0.8"]
    with pytest.raises(AnsibleFilterError):
        classroom.address_plan(students(3), small)
    plan = classroom.address_plan(students(2), small)
    grown = classroom.address_plan(students(3), [*small, "127.20.1.1-127.20.1.8"], previous=plan)
    assert {k: grown[k] for k in plan} == plan
    assert grown["student03"]["address_range"] == "127.20.1.1-127.20.1.4"


def test_per_subnet_ranges_place_each_student_in_their_subnet():
    ranges = {"room-a": "127.20.0.0/28", "room-b": "127.21.0.0/28"}
    roster = [
        {"id": "alice", "subnet": "room-a"},
        {"id": "bob", "subnet": "room-b"},
        {"id": "carol", "subnet": "room-b"},
    ]
    plan = classroom.address_plan(roster, ranges, pool_size=2)
    assert plan["alice"]["address_range"] == "127.20.0.1-127.20.0.2"
    assert plan["bob"]["address_range"] == "127.21.0.1-127.21.0.2"
    assert plan["carol"]["address_range"] == "127.21.0.3-127.21.0.4"
    with pytest.raises(AnsibleFilterError, match="name a subnet"):
        classroom.address_plan(["dave"], ranges)
    with pytest.raises(AnsibleFilterError, match="unknown subnet"):
        classroom.address_plan([{"id": "dave", "subnet": "room-c"}], ranges)


@pytest.mark.parametrize("bad", ["127.20.0.9-127.20.0.1", "127.20.0.300/24", "not-an-ip", "127.0.0.1-::1", ""])
def test_malformed_or_reversed_ranges_are_refused(bad):
    with pytest.raises(AnsibleFilterError):
        classroom.address_plan(students(1), bad)


@pytest.mark.parametrize("bad_id", ["Student01", "student_01", "-x", "a" * 40, ""])
def test_student_ids_must_be_dns_labels(bad_id):
    with pytest.raises(AnsibleFilterError, match="student id"):
        classroom.address_plan([bad_id], RANGE)


def test_duplicate_student_ids_are_refused():
    with pytest.raises(AnsibleFilterError, match="twice"):
        classroom.address_plan(["a1", "a1"], RANGE)


def test_plan_problems_finds_overlaps_foreign_ingress_ips_and_node_addresses():
    labs = [
        {"name": "s1", "address_range": "127.20.0.1-127.20.0.4", "ingress_ip": "127.20.0.1", "cluster": ""},
        {"name": "s2", "address_range": "127.20.0.4-127.20.0.7", "ingress_ip": "127.20.0.9", "cluster": ""},
        {"name": "s3", "address_range": "127.20.0.8-127.20.0.8", "ingress_ip": "", "cluster": ""},
        {"name": "s4", "address_range": "bogus", "ingress_ip": "", "cluster": ""},
    ]
    problems = classroom.plan_problems(labs, reserved=["127.20.0.8"])
    assert problems == [
        "s2: lab_ingress_ip 127.20.0.9 is outside its pool 127.20.0.4-127.20.0.7",
        "s2: pool 127.20.0.4-127.20.0.7 overlaps s1's pool 127.20.0.1-127.20.0.4",
        "s3: pool 127.20.0.8-127.20.0.8 contains node/reserved address 127.20.0.8",
        "s4: metallb_address_range 'bogus' is not an IP address",
    ]


def test_plan_problems_accepts_a_generated_plan_and_a_shared_cluster_pool():
    plan = classroom.address_plan(students(30), RANGE)
    labs = [
        {"name": k, "address_range": v["address_range"], "ingress_ip": v["ingress_ip"], "cluster": ""}
        for k, v in plan.items()
    ]
    assert classroom.plan_problems(labs) == []
    shared = [
        {"name": s, "address_range": "127.20.0.1-127.20.0.4", "ingress_ip": "127.20.0.1", "cluster": "k#c"}
        for s in students(3)
    ]
    assert classroom.plan_problems(shared) == []
