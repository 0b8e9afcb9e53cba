from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openflix.cdn.signing import (
    SignatureError,
    SignedRequest,
    SigningKeys,
    normalize_ip,
    sign_url,
    verify_url,
)
from openflix.errors import ConfigError, DataError, OpenflixError

SECRET_1 = bytes(range(32))
SECRET_2 = bytes(range(100, 140))
KEYS = SigningKeys({"k1": SECRET_1, "k2": SECRET_2}, active="k2")
BASE = "https://oca-17.example.net/v1"
TITLE = 8812
APPLIANCE = 17
NOW = 1_700_000_000
EXPIRES = NOW + 3600
V4 = "203.0.113.9"
V6 = "2001:db8::42"


def _sign(
    client_ip: str = V4, *, keys: SigningKeys = KEYS, title: int = TITLE, expires: int = EXPIRES
) -> str:
    return sign_url(BASE, title, APPLIANCE, client_ip, expires, keys)


def _verify(url: str, client_ip: str = V4, *, now: int = NOW, keys: SigningKeys = KEYS) -> SignedRequest:
    return verify_url(url, client_ip, now, keys, appliance_id=APPLIANCE)


def _with_param(url: str, name: str, value: str) -> str:
    """``url`` with parameter ``name`` set to ``value``, everything else untouched."""
    return re.sub(rf"([?&]){name}=[^&]*", lambda m: f"{m.group(1)}{name}={value}", url)


def _without_param(url: str, name: str) -> str:
    path, _, query = url.partition("?")
    return path + "?" + "&".join(p for p in query.split("&") if not p.startswith(name + "="))


class TestSigningKeys:
    def test_keeps_the_keys_and_the_active_id(self) -> None:
        assert dict(KEYS.secrets) == {"k1": SECRET_1, "k2": SECRET_2}
        assert KEYS.active == "k2"

    def test_repr_hides_the_secrets(self) -> None:
        text = repr(KEYS)
        assert text == "SigningKeys(key_ids=('k1', 'k2'), active='k2')"
        assert SECRET_1.hex() not in text

    def test_secrets_cannot_be_changed_afterwards(self) -> None:
        source = {"k1": SECRET_1}
        keys = SigningKeys(source, active="k1")
        source["k1"] = SECRET_2
        assert keys.secrets["k1"] == SECRET_1
        with pytest.raises(TypeError):
            keys.secrets["k1"] = SECRET_2  # type: ignore[index]

    @pytest.mark.parametrize("key_id", ["", "k 1", "k/1", "k:1", "kö", "k1\n", "k" * 33, 7])
    def test_rejects_a_malformed_key_id(self, key_id: object) -> None:
        with pytest.raises(ConfigError, match=r"key id must be 1\.\.32 of"):
            SigningKeys({key_id: SECRET_1}, active=key_id)  # type: ignore[dict-item,arg-type]

    def test_accepts_the_longest_key_id(self) -> None:
        key_id = "A-z_9" * 6 + "xy"
        assert SigningKeys({key_id: SECRET_1}, active=key_id).active == key_id

    def test_rejects_a_short_secret(self) -> None:
        with pytest.raises(ConfigError, match=r"'k1': the secret must be at least 32 bytes \(got 31\)"):
            SigningKeys({"k1": SECRET_1[:31]}, active="k1")

    def test_rejects_a_text_secret(self) -> None:
        with pytest.raises(ConfigError, match=r"must be bytes \(got str\); use SigningKeys.from_text"):
            SigningKeys({"k1": SECRET_1.hex()}, active="k1")  # type: ignore[dict-item]

    def test_rejects_no_keys(self) -> None:
        with pytest.raises(ConfigError, match="at least one"):
            SigningKeys({}, active="k1")

    def test_rejects_an_active_key_that_is_not_there(self) -> None:
        with pytest.raises(ConfigError, match=r"active key 'k3' is not among the keys \(k1, k2\)"):
            SigningKeys({"k1": SECRET_1, "k2": SECRET_2}, active="k3")

    def test_config_error_is_a_value_error(self) -> None:
        with pytest.raises(ValueError, match="active key"):
            SigningKeys({"k1": SECRET_1}, active="k2")


class TestFromText:
    def test_reads_hex_pairs(self) -> None:
        keys = SigningKeys.from_text(f"k1:{SECRET_1.hex()}, k2:{SECRET_2.hex().upper()}", active="k2")
        assert keys == KEYS

    def test_rejects_an_entry_without_colon_and_does_not_echo_it(self) -> None:
        with pytest.raises(ConfigError, match=r"entry 2 must be KEY_ID:HEX_SECRET") as info:
            SigningKeys.from_text(f"k1:{SECRET_1.hex()},{SECRET_2.hex()}", active="k1")
        assert SECRET_2.hex() not in str(info.value)

    def test_rejects_a_secret_that_is_not_hex_and_does_not_echo_it(self) -> None:
        secret = "zz" + SECRET_1.hex()
        with pytest.raises(ConfigError, match=r"'k1': the secret must be hexadecimal") as info:
            SigningKeys.from_text(f"k1:{secret}", active="k1")
        assert secret not in str(info.value)

    def test_rejects_a_short_secret(self) -> None:
        with pytest.raises(ConfigError, match=r"at least 32 bytes \(got 16\)"):
            SigningKeys.from_text(f"k1:{SECRET_1[:16].hex()}", active="k1")

    def test_rejects_a_repeated_key_id(self) -> None:
        with pytest.raises(ConfigError, match="'k1' appears twice"):
            SigningKeys.from_text(f"k1:{SECRET_1.hex()},k1:{SECRET_2.hex()}", active="k1")

    def test_rejects_a_bad_key_id(self) -> None:
        with pytest.raises(ConfigError, match="key id must be"):
            SigningKeys.from_text(f"key one:{SECRET_1.hex()}", active="key one")

    def test_rejects_empty_text(self) -> None:
        with pytest.raises(ConfigError, match="entry 1 must be KEY_ID:HEX_SECRET"):
            SigningKeys.from_text("", active="k1")


class TestNormalizeIp:
    @pytest.mark.parametrize(
        ("spelling", "canonical"),
        [
            ("203.0.113.9", "203.0.113.9"),
            ("::ffff:203.0.113.9", "203.0.113.9"),
            ("::FFFF:CB00:7109", "203.0.113.9"),
            ("2001:DB8:0:0:0:0:0:42", "2001:db8::42"),
            ("2001:0db8::0042", "2001:db8::42"),
            ("fe80::1%eth0", "fe80::1"),
        ],
    )
    def test_spellings_of_one_address_agree(self, spelling: str, canonical: str) -> None:
        assert normalize_ip(spelling) == canonical

    @pytest.mark.parametrize("bad", ["", "203.0.113", "203.0.113.09", "1.2.3.4, 5.6.7.8", " 1.2.3.4", "host"])
    def test_rejects_what_is_not_one_address(self, bad: str) -> None:
        with pytest.raises(DataError, match="client IP must be one IPv4 or IPv6 address"):
            normalize_ip(bad)


class TestSignUrl:
    def test_url_shape(self) -> None:
        url = _sign()
        prefix = f"{BASE}/{TITLE}?t={TITLE}&a={APPLIANCE}&e={EXPIRES}&k=k2&s="
        assert url.startswith(prefix)
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", url.removeprefix(prefix))

    def test_a_trailing_slash_on_the_base_url_is_ignored(self) -> None:
        assert sign_url(BASE + "/", TITLE, APPLIANCE, V4, EXPIRES, KEYS) == _sign()

    def test_is_deterministic_and_depends_on_the_client_ip(self) -> None:
        assert _sign() == _sign()
        assert _sign("203.0.113.10") != _sign()

    @pytest.mark.parametrize(
        "base_url",
        ["oca-17.example.net/v1", "ftp://oca-17.example.net", "https:///v1", f"{BASE}?x=1", f"{BASE}#top"],
    )
    def test_rejects_a_malformed_base_url(self, base_url: str) -> None:
        with pytest.raises(DataError, match="appliance base URL must be"):
            sign_url(base_url, TITLE, APPLIANCE, V4, EXPIRES, KEYS)

    @pytest.mark.parametrize(
        ("title", "appliance", "expires", "what"),
        [
            (-1, APPLIANCE, EXPIRES, "title_id"),
            (True, APPLIANCE, EXPIRES, "title_id"),
            (TITLE, 2**63, EXPIRES, "appliance_id"),
            (TITLE, APPLIANCE, float(EXPIRES), "expires"),
        ],
    )
    def test_rejects_a_bad_number(self, title: int, appliance: int, expires: int, what: str) -> None:
        with pytest.raises(DataError, match=f"{what} must be an integer in 0.."):
            sign_url(BASE, title, appliance, V4, expires, KEYS)

    def test_rejects_a_malformed_client_ip(self) -> None:
        with pytest.raises(DataError, match="client IP"):
            _sign("203.0.113.9, 10.0.0.1")


class TestVerifyUrl:
    @pytest.mark.parametrize("client_ip", [V4, V6])
    def test_round_trip(self, client_ip: str) -> None:
        assert _verify(_sign(client_ip), client_ip) == SignedRequest(
            title_id=TITLE, appliance_id=APPLIANCE, expires=EXPIRES, key_id="k2"
        )

    @pytest.mark.parametrize(
        ("signed_for", "request_from"),
        [
            ("::ffff:203.0.113.9", "203.0.113.9"),
            ("203.0.113.9", "::FFFF:203.0.113.9"),
            ("2001:DB8:0::42", "2001:db8::42"),
            ("2001:db8::42", "2001:0DB8:0:0:0:0:0:0042"),
        ],
    )
    def test_spellings_of_the_client_ip_agree(self, signed_for: str, request_from: str) -> None:
        assert _verify(_sign(signed_for), request_from).title_id == TITLE

    def test_accepts_the_request_target_alone(self) -> None:
        url = _sign()
        assert _verify(url.removeprefix("https://oca-17.example.net")).title_id == TITLE

    def test_is_valid_up_to_and_including_the_expiry_second(self) -> None:
        assert _verify(_sign(), now=EXPIRES).expires == EXPIRES

    def test_rejects_an_expired_url(self) -> None:
        with pytest.raises(SignatureError, match=rf"expired at {EXPIRES}, 1 s before now \({EXPIRES + 1}\)"):
            _verify(_sign(), now=EXPIRES + 1)

    @pytest.mark.parametrize(("signed_for", "request_from"), [(V4, "203.0.113.10"), (V6, "2001:db8::43")])
    def test_rejects_a_foreign_client_ip(self, signed_for: str, request_from: str) -> None:
        with pytest.raises(SignatureError, match=f"client IP {request_from}; .* another client"):
            _verify(_sign(signed_for), request_from)

    def test_rejects_a_url_signed_for_another_appliance(self) -> None:
        with pytest.raises(SignatureError, match=f"signed for appliance {APPLIANCE}, this is appliance 18"):
            verify_url(_sign(), V4, NOW, KEYS, appliance_id=18)

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("a", "18"),
            ("e", str(EXPIRES + 86_400)),
            ("k", "k1"),
            ("s", "A" * 43),
        ],
    )
    def test_rejects_a_tampered_parameter(self, name: str, value: str) -> None:
        url = _with_param(_sign(), name, value)
        appliance = int(value) if name == "a" else APPLIANCE  # the forger aims at appliance 18
        with pytest.raises(SignatureError, match="signature does not match"):
            verify_url(url, V4, NOW, KEYS, appliance_id=appliance)

    def test_rejects_a_tampered_title(self) -> None:
        url = _with_param(_sign(), "t", "8813")
        with pytest.raises(SignatureError, match=r"path '/v1/8812' does not end in '/8813'"):
            _verify(url.removeprefix("https://oca-17.example.net"))
        with pytest.raises(SignatureError, match="signature does not match"):
            _verify(url.replace("/8812?", "/8813?"))

    def test_rejects_a_tampered_path(self) -> None:
        with pytest.raises(SignatureError, match="does not end in '/8812'"):
            _verify(_sign().replace("/8812?", "/8813?"))

    def test_rejects_each_half_of_a_signature_swap(self) -> None:
        other = _sign(title=TITLE + 1).rpartition("s=")[2]
        with pytest.raises(SignatureError, match="signature does not match"):
            _verify(_with_param(_sign(), "s", other))

    @pytest.mark.parametrize("name", ["t", "a", "e", "k", "s"])
    def test_rejects_a_missing_parameter(self, name: str) -> None:
        with pytest.raises(SignatureError, match=f"missing parameter '{name}'"):
            _verify(_without_param(_sign(), name))

    def test_rejects_a_url_without_query(self) -> None:
        with pytest.raises(SignatureError, match="missing parameter 't', 'a', 'e', 'k', 's'"):
            _verify(f"{BASE}/{TITLE}")

    def test_rejects_a_repeated_parameter(self) -> None:
        with pytest.raises(SignatureError, match="'a' appears twice"):
            _verify(_sign() + "&a=17")

    def test_rejects_an_unexpected_parameter(self) -> None:
        with pytest.raises(SignatureError, match="unexpected parameter 'cb'"):
            _verify(_sign() + "&cb=1")

    def test_rejects_a_parameter_without_value(self) -> None:
        url = _sign().replace(f"e={EXPIRES}", "e")
        with pytest.raises(SignatureError, match="'e' has no value"):
            _verify(url)

    @pytest.mark.parametrize(
        ("name", "value"),
        [("a", "017"), ("a", "+17"), ("a", "-17"), ("a", " 17"), ("e", "1e9"), ("e", "9" * 20), ("a", "")],
    )
    def test_rejects_a_non_canonical_number(self, name: str, value: str) -> None:
        with pytest.raises(SignatureError, match=f"'{name}' must be a decimal integer without leading zeros"):
            _verify(_with_param(_sign(), name, value))

    @pytest.mark.parametrize("value", ["k 1", "k%31", ""])
    def test_rejects_a_malformed_key_id(self, value: str) -> None:
        with pytest.raises(SignatureError, match="'k' is not a key id"):
            _verify(_with_param(_sign(), "k", value))

    def test_rejects_an_unknown_key_id(self) -> None:
        with pytest.raises(SignatureError, match=r"key id 'k9' is unknown or retired \(trusted: k1, k2\)"):
            _verify(_with_param(_sign(), "k", "k9"))

    @pytest.mark.parametrize("value", ["A" * 42, "A" * 44, "A" * 42 + "é", _sign().rpartition("s=")[2] + "="])
    def test_rejects_a_signature_of_the_wrong_length_or_alphabet(self, value: str) -> None:
        with pytest.raises(SignatureError, match="'s' must be 43 urlsafe base64 characters"):
            _verify(_with_param(_sign(), "s", value))

    def test_rejects_a_malformed_client_ip_as_the_callers_error(self) -> None:
        with pytest.raises(DataError, match="client IP"):
            _verify(_sign(), "unknown")

    def test_signature_error_is_a_permission_error_and_an_openflix_error(self) -> None:
        with pytest.raises(SignatureError) as info:
            _verify(_sign(), now=EXPIRES + 1)
        assert isinstance(info.value, PermissionError)
        assert isinstance(info.value, OpenflixError)


class TestSameValueSpelledDifferently:
    """Spellings that decode to the signed value are still refused: the verifier does not decode.

    A lenient verifier (``int()`` on parameters, percent-decoding, base64-decoding the
    signature) would accept each of these as the very URL that was signed.
    """

    @pytest.mark.parametrize("digit", ["٨", "８", "𝟖"])  # int() reads each as 8
    def test_a_unicode_digit(self, digit: str) -> None:
        assert int(digit) == 8
        url = _with_param(_sign(), "t", str(TITLE).replace("8", digit, 1))
        with pytest.raises(SignatureError, match="'t' must be a decimal integer"):
            _verify(url)

    def test_a_percent_encoded_digit(self) -> None:
        url = _with_param(_sign(), "a", "%317")
        with pytest.raises(SignatureError, match="'a' must be a decimal integer"):
            _verify(url)

    def test_a_percent_encoded_parameter_name(self) -> None:
        url = _sign().replace("&a=", "&%61=")
        with pytest.raises(SignatureError, match="unexpected parameter '%61'"):
            _verify(url)

    def test_the_other_base64_spelling_of_the_last_signature_byte(self) -> None:
        url = _sign()
        signature = url.rpartition("s=")[2]
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        twin = signature[:-1] + alphabet[alphabet.index(signature[-1]) ^ 1]  # flips an unused padding bit
        assert base64.urlsafe_b64decode(twin + "=") == base64.urlsafe_b64decode(signature + "=")
        with pytest.raises(SignatureError, match="signature does not match"):
            _verify(_with_param(url, "s", twin))


class TestRotation:
    OLD = SigningKeys({"k1": SECRET_1}, active="k1")
    BOTH = SigningKeys({"k1": SECRET_1, "k2": SECRET_2}, active="k2")
    NEW = SigningKeys({"k2": SECRET_2}, active="k2")

    def test_an_old_url_verifies_while_its_key_is_kept(self) -> None:
        old_url = _sign(keys=self.OLD)
        assert _verify(old_url, keys=self.BOTH).key_id == "k1"

    def test_new_urls_use_the_active_key(self) -> None:
        new_url = _sign(keys=self.BOTH)
        assert "&k=k2&" in new_url
        assert _verify(new_url, keys=self.BOTH).key_id == "k2"
        assert _verify(new_url, keys=self.NEW).key_id == "k2"

    def test_an_old_url_fails_once_its_key_is_retired(self) -> None:
        with pytest.raises(SignatureError, match=r"key id 'k1' is unknown or retired \(trusted: k2\)"):
            _verify(_sign(keys=self.OLD), keys=self.NEW)

    def test_a_url_of_a_new_key_fails_where_that_key_is_not_yet_deployed(self) -> None:
        with pytest.raises(SignatureError, match="key id 'k2' is unknown or retired"):
            _verify(_sign(keys=self.BOTH), keys=self.OLD)

    def test_same_key_id_with_another_secret_does_not_verify(self) -> None:
        impostor = SigningKeys({"k1": SECRET_2}, active="k1")
        with pytest.raises(SignatureError, match="signature does not match"):
            _verify(_sign(keys=self.OLD), keys=impostor)


ips = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)


@st.composite
def signed_urls(draw: st.DrawFn) -> tuple[str, str, int]:
    """A URL signed for any title, appliance and client IP, valid at ``NOW``; with its IP and appliance."""
    title = draw(st.integers(0, 2**63 - 1), label="title")
    appliance = draw(st.integers(0, 2**63 - 1), label="appliance")
    ip = draw(ips, label="client IP")
    expires = draw(st.integers(NOW, 2**63 - 1), label="expires")
    return sign_url(BASE, title, appliance, ip, expires, KEYS), ip, appliance


# Characters a forger would try first, and then anything at all.
replacements = st.one_of(st.sampled_from("0123456789+-_=&%.?#/ akest٨８\n"), st.characters())


@given(signed_urls(), st.data())
def test_changing_any_character_of_the_query_never_verifies(
    signed: tuple[str, str, int], data: st.DataObject
) -> None:
    url, ip, appliance = signed
    assert verify_url(url, ip, NOW, KEYS, appliance_id=appliance)
    start = url.index("?") + 1
    i = data.draw(st.integers(start, len(url) - 1), label="position")
    char = data.draw(replacements.filter(lambda c: c != url[i]), label="replacement")
    with pytest.raises(SignatureError):
        verify_url(url[:i] + char + url[i + 1 :], ip, NOW, KEYS, appliance_id=appliance)


@given(signed_urls(), st.data())
def test_dropping_any_character_of_the_query_never_verifies(
    signed: tuple[str, str, int], data: st.DataObject
) -> None:
    url, ip, appliance = signed
    i = data.draw(st.integers(url.index("?"), len(url) - 1), label="position")
    with pytest.raises(SignatureError):
        verify_url(url[:i] + url[i + 1 :], ip, NOW, KEYS, appliance_id=appliance)


@given(ips, ips)
def test_a_url_verifies_only_from_the_address_it_was_signed_for(signed_for: str, request_from: str) -> None:
    url = _sign(signed_for)
    if normalize_ip(signed_for) == normalize_ip(request_from):
        assert _verify(url, request_from).title_id == TITLE
    else:
        with pytest.raises(SignatureError, match="signature does not match"):
            _verify(url, request_from)


def test_parameters_in_another_order_still_verify() -> None:
    url = _sign()
    path, _, query = url.partition("?")
    reordered = path + "?" + "&".join(reversed(query.split("&")))
    assert _verify(reordered) == _verify(url)


def test_a_number_beyond_64_bits_is_refused_by_name() -> None:
    with pytest.raises(SignatureError, match="'e' must be a decimal integer"):
        _verify(_with_param(_sign(), "e", str(2**63)))
