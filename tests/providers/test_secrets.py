import pytest

from providers.models import Provider
from providers.secrets import KeyUnreadable, secret_decrypt, secret_encrypt
from providers.selectors import endpoint_get
from providers.services import provider_keys_rotate

pytestmark = pytest.mark.django_db

OLD_SECRET = "old-secret-" + "o" * 50
NEW_SECRET = "new-secret-" + "n" * 50


def test_a_key_is_stored_encrypted_and_read_back(settings):
    provider = Provider(name="deepseek", label="DeepSeek", base_url="https://api.deepseek.com/v1")
    provider.api_key = "sk-deepseek-1234567890"
    provider.save()

    stored = Provider.objects.values_list("api_key_encrypted", flat=True).get()
    assert "sk-deepseek" not in stored
    assert Provider.objects.get().api_key == "sk-deepseek-1234567890"


def test_a_key_encrypted_under_an_old_secret_key_still_reads_while_it_is_a_fallback(settings):
    settings.SECRET_KEY = OLD_SECRET
    token = secret_encrypt("sk-1")

    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW_SECRET, [OLD_SECRET]

    assert secret_decrypt(token) == "sk-1"


def test_rotating_re_encrypts_every_key_so_the_old_secret_can_go(settings):
    settings.SECRET_KEY = OLD_SECRET
    provider = Provider(name="kimi", label="Kimi", base_url="https://api.moonshot.cn/v1")
    provider.api_key = "sk-kimi"
    provider.save()
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW_SECRET, [OLD_SECRET]

    assert provider_keys_rotate() == 1

    settings.SECRET_KEY_FALLBACKS = []
    assert Provider.objects.get().api_key == "sk-kimi"


def test_a_key_no_configured_secret_opens_is_unreadable_and_its_provider_unavailable(settings):
    settings.SECRET_KEY = OLD_SECRET
    provider = Provider(name="qwen", label="Qwen", base_url="https://dashscope.aliyuncs.com/v1")
    provider.api_key = "sk-qwen"
    provider.save()
    settings.SECRET_KEY = NEW_SECRET

    with pytest.raises(KeyUnreadable):
        Provider.objects.get().api_key  # noqa: B018
    assert endpoint_get("qwen") is None


def test_a_separate_provider_keys_secret_is_used_instead_of_secret_key(settings):
    settings.PROVIDER_KEYS_SECRET = "keys-only-secret"
    token = secret_encrypt("sk-2")

    settings.SECRET_KEY = NEW_SECRET  # rotating SECRET_KEY does not touch provider keys

    assert secret_decrypt(token) == "sk-2"
