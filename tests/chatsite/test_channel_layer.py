"""The channel layer under more concurrent commands than it has connections."""

import asyncio

from chatsite.channel_layer import ChannelLayer


async def test_commands_past_the_pool_size_wait_for_a_connection_instead_of_failing():
    layer = ChannelLayer(hosts=[{"max_connections": 2}], prefix="test-pool")
    channels = [await layer.new_channel() for _ in range(40)]
    try:
        await asyncio.gather(*(layer.group_add("crowd", channel) for channel in channels))
        await layer.group_send("crowd", {"type": "hello"})
        received = await asyncio.gather(*(layer.receive(channel) for channel in channels[:3]))
        await asyncio.gather(*(layer.group_discard("crowd", channel) for channel in channels))
    finally:
        await layer.flush()

    assert [message["type"] for message in received] == ["hello"] * 3
