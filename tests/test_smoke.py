from tests.support import Client, codes, decision


async def test_check_order_when_margin_suffices_then_accepts_with_numbers(btc: Client) -> None:
    response = await btc.check(quantity="1", price="50000", leverage=10)
    assert decision(response) == "DECISION_ACCEPT", codes(response)
    assert response.initial_margin == "5000"
    assert response.order_cost == "5000"
    assert response.available_margin == "95000"
    assert response.max_leverage == 125
