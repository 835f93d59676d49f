import pytest

from app.crypto import DecryptionError, KeyConfigError, Keyring, generate_key

OLD = "old:" + generate_key()
NEW = "new:" + generate_key()


def test_round_trip():
    keyring = Keyring.parse(NEW)
    ciphertext = keyring.encrypt("token-value", "credential:1:2:access_token")
    assert keyring.decrypt(ciphertext, "credential:1:2:access_token") == "token-value"


def test_ciphertext_names_its_key():
    assert Keyring.parse(NEW).encrypt("x", "c").startswith("pa1.new.")


def test_same_plaintext_encrypts_differently():
    keyring = Keyring.parse(NEW)
    assert keyring.encrypt("x", "c") != keyring.encrypt("x", "c")


def test_newest_key_encrypts_old_key_decrypts():
    old_ciphertext = Keyring.parse(OLD).encrypt("secret", "c")
    rotated = Keyring.parse(f"{NEW},{OLD}")
    assert rotated.decrypt(old_ciphertext, "c") == "secret"
    assert rotated.encrypt("secret", "c").startswith("pa1.new.")


def test_other_context_fails():
    keyring = Keyring.parse(NEW)
    ciphertext = keyring.encrypt("secret", "credential:1:2:access_token")
    with pytest.raises(DecryptionError):
        keyring.decrypt(ciphertext, "credential:3:2:access_token")


def test_tampered_ciphertext_fails():
    keyring = Keyring.parse(NEW)
    ciphertext = keyring.encrypt("secret", "c")
    tampered = ciphertext[:-2] + ("A" if ciphertext[-2] != "A" else "B") + ciphertext[-1]
    with pytest.raises(DecryptionError):
        keyring.decrypt(tampered, "c")


def test_unknown_key_fails():
    ciphertext = Keyring.parse(OLD).encrypt("secret", "c")
    with pytest.raises(DecryptionError, match="'old'"):
        Keyring.parse(NEW).decrypt(ciphertext, "c")


def test_key_id_of():
    assert Keyring.key_id_of(Keyring.parse(NEW).encrypt("x", "c")) == "new"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("", "no encryption key"),
        ("nocolon", "invalid"),
        ("bad id:" + generate_key(), "invalid"),
        ("k1:c2hvcnQ", "expected 32"),
        ("k1:!!!!", "base64"),
        (f"k1:{generate_key()},k1:{generate_key()}", "twice"),
    ],
)
def test_invalid_key_setting(setting, message):
    with pytest.raises(KeyConfigError, match=message):
        Keyring.parse(setting)
