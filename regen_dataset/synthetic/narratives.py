"""Narratives and profiles grounded in a user's own purchases and reviews.

Every fact a narrative states comes from the sequence: the dominant theme is the category the user
bought from most, the uses are the ones their reviews name, the colours and brands are the ones
they bought most, the temper follows their ratings, and the last purchase's reason follows how it
was reached (a restock, something to go with the previous item, a refinement of it, or a browse).
The wording is drawn from many sentence patterns and synonyms, so that two users with similar
histories read differently, as two LLM answers would.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from regen_dataset.synthetic.catalog import MATERIALS, Catalog
from regen_dataset.synthetic.shoppers import Purchase, Shopper
from regen_dataset.synthetic.wording import join_list, render_one


@dataclass
class Facts:
    last: Purchase
    previous: Purchase | None
    thing: str  # "pack of blue gel pens", "navy maxi dress" (no article)
    plain: str  # "gel pens", "maxi dress"
    kinds: list[str]  # earlier purchases, most recent first: "desk lamps", "gel pens"
    theme: str  # the category they bought from most
    item_theme: str  # the last item's
    second_theme: str | None
    colours: list[str]  # most bought first, never "assorted"
    brands: list[str]  # most bought first
    loyal: bool  # bought the top brand more than once
    uses: list[str]  # named in their reviews, most often first
    last_use: str
    mean_rating: float
    value: str  # "budget" or "quality"
    quality: str  # a word for the last item's material


def gather(catalog: Catalog, purchases: list[Purchase], uses: list[str | None]) -> Facts:
    category = catalog.category
    last = purchases[-1]
    leaf = catalog.leaves[last.item.leaf]

    def theme_of(p: Purchase) -> str:
        path = catalog.leaves[p.item.leaf].path
        return path[2].lower() if category == "office" else f"{path[1].lower()}'s {path[2].lower()}"

    themes = Counter(theme_of(p) for p in purchases).most_common(2)
    colours = Counter(
        p.item.colour.lower() for p in purchases if p.item.colour != "Assorted Colors"
    )
    brands = Counter(p.item.brand for p in purchases).most_common(3)
    named = Counter(u for u in uses if u)
    earlier = list(
        dict.fromkeys(catalog.leaves[p.item.leaf].plural for p in reversed(purchases[:-1]))
    )
    prices = [p.item.price for p in purchases if p.item.price]
    average = sum(prices) / len(prices) if prices else 20.0
    return Facts(
        last=last,
        previous=purchases[-2] if len(purchases) > 1 else None,
        thing=leaf.phrase(last.item.colour.lower()),
        plain=leaf.phrase(),
        kinds=[k for k in earlier if k != leaf.plural][:4],
        theme=themes[0][0],
        item_theme=theme_of(last),
        second_theme=themes[1][0] if len(themes) > 1 else None,
        colours=[c for c, _ in colours.most_common(2)],
        brands=[b for b, _ in brands],
        loyal=brands[0][1] > 1,
        uses=[u for u, _ in named.most_common(2)],
        last_use=uses[-1] or (named.most_common(1)[0][0] if named else "everyday use"),
        mean_rating=sum(p.rating for p in purchases) / len(purchases),
        value="budget" if average < 22 else "quality",
        quality=MATERIALS[last.item.material],
    )


def third_person(use: str) -> str:
    """'my home office' -> 'their home office': reviews speak for themselves, narratives do not."""
    return use.replace("my ", "their ").replace("our ", "their ")


def second_person(use: str) -> str:
    return use.replace("my ", "your ").replace("our ", "your ")


def _values(catalog: Catalog, facts: Facts) -> dict[str, str]:
    item = facts.last.item
    previous = facts.previous.item if facts.previous else None
    return {
        "thing": facts.thing,
        "plain": facts.plain,
        "brand": item.brand,
        "colour": item.colour.lower(),
        "material": item.material.lower(),
        "quality": facts.quality,
        "size": item.size,
        "title": item.title,
        "price": f"${item.price:.2f}" if item.price else "its price",
        "use": third_person(facts.last_use),
        "use_you": second_person(facts.last_use),
        "uses": third_person(join_list(facts.uses) or facts.last_use),
        "theme": facts.theme,
        "theme2": facts.second_theme or facts.theme,
        "item_theme": facts.item_theme,
        "kinds": join_list(facts.kinds[:3]) or "a few earlier items",
        "kind": facts.kinds[0] if facts.kinds else "their first purchases",
        "colours": join_list(facts.colours, "or") or "mixed",
        "top_colour": facts.colours[0] if facts.colours else "neutral",
        "brands": join_list(facts.brands[:2]),
        "top_brand": facts.brands[0],
        "prev": catalog.leaves[previous.leaf].phrase() if previous else "earlier purchase",
        "prev_brand": previous.brand if previous else item.brand,
        "feature": item.features[0].lower(),
        "feature2": item.features[1].lower(),
    }


# --- purchase reason (one sentence) -----------------------------------------------------------

_REASON = {
    "repeat": (
        "{The customer|This shopper|They} {was|were} running low on the [plain] they had "
        "{already tried|bought before|liked before} and {restocked|ordered more}.",
        "{Having liked|Happy with} the [brand] [plain] the first time, they {bought it again|"
        "came back for another}{ for [use]|}.",
    ),
    "complement": (
        "{They needed|The customer wanted|This shopper was after} a [thing] to "
        "{go with|complement|pair with} the [prev] they had just bought.",
        "{After buying|Having just bought} a [prev], {they|the customer} {picked up|added|chose} "
        "a [thing] {to complete the set|that works with it|to use alongside it}.",
    ),
    "similar": (
        "{The previous|Their last} [prev] {was not quite right|missed the mark|fell short}, so "
        "they {switched to|tried|went for} a [thing] from [brand].",
        "{Looking for|Wanting} {a better fit than|an alternative to} the [prev], {they|the "
        "customer} {settled on|chose} this [quality] [material] [plain].",
    ),
    "browse": (
        "{The customer|They|This shopper} {likely|probably|} {needed|wanted|was looking for} a "
        "{[quality]|reliable|practical|good-looking} [plain] for [use]{, and the [colour] "
        "caught their eye|, and [brand] was a name they trusted|, at a fair price|}.",
        "{Needing|Wanting} a [thing] for [use], {they|the customer} {chose|went with|picked} "
        "this one from [brand].",
        "With [use] in mind, {they|the customer} {bought|ordered|picked up} a [thing] "
        "{that suits their taste|in a color they like|from a brand they know}.",
    ),
}
_REASON["first"] = _REASON["browse"]

# --- explanation (about three sentences) -------------------------------------------------------

_EXPLAIN_REVIEW = {
    "good": (
        "{Their review|The review they wrote} {praises|highlights|singles out} the [colour] "
        "{finish|look} and the [quality] [material].",
        "{In their review, they|They} {call|describe} it {well made|a good buy|just right} "
        "for [use].",
        "{The five-star|The positive|Their upbeat} review {mentions|points to} {how well it "
        "fits|the [quality] [material]|the [size] option}.",
    ),
    "mixed": (
        "{Their review is lukewarm|The review is mixed}: {the [material] felt thinner than "
        "hoped|it works but did not impress}.",
        "{Although|Even though} {their review|the review} {has reservations|is only middling}, "
        "{the item still|it still} {met the basic need|did the job} for [use].",
    ),
    "bad": (
        "{Their review is critical|The review is negative}: {the [material] did not hold up|it "
        "was not what they expected}.",
        "{They were disappointed|It disappointed them}, {as their review makes clear|which the "
        "review spells out}, {mostly because of the [material]|mostly because of the fit}.",
    ),
}
_EXPLAIN_HISTORY = (
    "{This fits|It fits|That matches} {a history that includes|earlier purchases of|a record "
    "of buying} [kinds], {which shows|showing|pointing to} {a steady|a clear|an ongoing} "
    "interest in [theme].",
    "{Their earlier|Past} purchases{, such as [kinds],|} {center on|revolve around|lean "
    "towards} [theme], so {the choice|this purchase|it} {is no surprise|makes sense|follows "
    "naturally}.",
    "{Looking at|Given} {their history|what they bought before} ([kinds]), {[theme] is "
    "clearly their main interest|they keep returning to [theme]}.",
    "{[Kinds_cap] came first|Before this came [kinds]}; {another step into|more of} [theme] "
    "{was only a matter of time|fits that pattern}.",
    "{Most of what they buy|The bulk of their orders} {falls under|sits in} [theme]{, and this "
    "is no exception|; this one too}.",
    "{As someone who already owns|Having already bought} [kinds], {they were|the customer was} "
    "{likely|bound|always going} to {add to|build on} that.",
)
_EXPLAIN_TASTE = {
    "loyal": (
        "{They also keep coming back to|They have bought from|They have ordered from} "
        "[top_brand] {more than once|repeatedly}{, and favor [colours] colors|}.",
        "{Brand loyalty|A preference for [top_brand]} {shows|plays a part} too, {as does their "
        "taste for [colours]|along with a taste for [colours] colors}.",
        "[top_brand] {is a familiar name in their orders|has served them before}, {which "
        "helps|and that counts}.",
        "{Repeat orders from|Several purchases from} [top_brand] {suggest trust in the brand|"
        "hint at loyalty}.",
    ),
    "curious": (
        "{They try|They are open to} {new brands|different brands} {but|yet} {stick to|keep "
        "choosing} [colours] {tones|colors}.",
        "{Brand matters less to them than|They care less about brand than about} "
        "{color and [use]|fit and price}.",
        "{No single brand dominates|They rarely buy the same brand twice}; {what they look "
        "for is|they look for} {something that works|good value|the right color}.",
        "{Their choices of brand vary|They switch brands freely}, {though|but} [colours] "
        "{shows up|keeps appearing} {often|again and again}.",
    ),
}
_EXPLAIN_USE = (
    "{[Use_cap] comes up|They mention [use]} {in their reviews|when they write reviews}, and "
    "this {serves that|suits it}.",
    "{Much of what they buy|A lot of their shopping} is {for|meant for} [use].",
    "{It is easy to see|One can see} {how|why} this {fits into|helps with} [use].",
)
_EXPLAIN_PRICE = {
    "budget": (
        "{At [price]|Priced at [price]}, it {also suits|fits} {a shopper who watches costs|"
        "their careful budget}.",
        "{They tend to|They usually} {buy modestly priced items|keep an eye on price}, and "
        "this one {is no splurge|stays affordable}.",
    ),
    "quality": (
        "{They do not mind|They are willing} {paying|to pay} {for quality|a little more}, and "
        "{this one|it} {delivers|reflects that}.",
        "{Price is|Cost seems} {secondary to|less important than} {quality|durability} "
        "{for them|in their choices}.",
    ),
}

# --- endorsement (second person, about five sentences) -----------------------------------------

_ENDORSE_OPEN = (
    "{The|This} [title] {is a natural next step for you|would suit you well|is worth a look}.",
    "{If you liked|Since you enjoyed|Given how much you use} your [kind], {you will want to "
    "see|take a look at|consider} the [title].",
    "{Meet|Say hello to|Here is} the [title]{, picked with you in mind|: a good match for your "
    "taste|}.",
    "{Looking for|Shopping for|In need of} {more|new} [item_theme]? {Try|Consider|Check out} "
    "the [title].",
    "{We picked|We found|Here's} the [title] {for you|with your history in mind}.",
)
_ENDORSE_WHY = (
    "{You have already|You've} {picked|chosen|bought} [kinds]{, and|;} this [plain] {matches "
    "that taste|fits right in|builds on them}.",
    "{It|This [plain]} {lines up with|fits} {your interest in|the way you shop for} [theme]"
    "{, just like your [kind]|}.",
    "{Your history|What you have bought so far} {says|shows} you {value|care about} "
    "{[quality] materials|good value|things that last}, and this delivers.",
)
_ENDORSE_DETAIL = (
    "{It comes in|You get it in} [colour] [material]{, with [feature] and [feature2]|}.",
    "{The|Its} [quality] [material] {and|plus} {a|the} [colour] finish {make it easy to|let "
    "you} {use it for [use_you]|reach for it every day}.",
    "{You will like|Look out for} {the|its} [feature] {and|plus} the [feature2], {in|with} "
    "the [size] option{ you tend to choose|}.",
)
_ENDORSE_PRICE = (
    "{At [price], it|It} {is good value|is priced fairly|will not stretch your budget}{ for "
    "something you will use often|}.",
    "{Built for [use_you]|Made with [use_you] in mind}, it {earns its place|is worth [price]|pays "
    "for itself}.",
    "{For [use_you]|When it comes to [use_you]}, {few options|little else} at [price] {do as "
    "well|compete}.",
)
_ENDORSE_CLOSE = (
    "{Add it to your cart|Give it a try|Treat yourself} {today|this week|}!",
    "{It pairs well with|It goes nicely with|It complements} what you already own.",
    "{Shoppers like you|Customers with similar tastes} {rate it highly|keep coming back to it}.",
    "{We think|Chances are} you will {love|be glad you chose} it.",
)

# --- user summaries ----------------------------------------------------------------------------

_BRIEF = (
    "{This customer|This shopper|A shopper who} {enjoys|favors|gravitates towards|mostly buys} "
    "[theme], {with a soft spot for|especially in|often in} [colours]{ and a fondness for "
    "[top_brand]|}. {They are|They come across as} [trait] {buyers|shoppers} who shop for "
    "[uses].",
    "{Mostly|Largely|Chiefly} {buys|shops for} [theme]{ and [theme2]|} for [uses]. "
    "{[Trait] and [trait2]|A [trait] buyer}{, loyal to [top_brand]| who picks [colours] "
    "colors|}.",
    "{A [trait] shopper|A [trait] customer} {focused on|drawn to} [theme] for [uses], "
    "{who likes|who leans towards} [colours] {colors|tones}{ and [top_brand] products|}.",
    "{[Trait], [trait2] buyer of|Buys} [theme]{ (think [kinds])|}; {uses them for|mainly "
    "for} [uses].",
    "[Uses_cap] {drive|shape|explain} {most of|much of} {their|this customer's} {shopping|"
    "orders}: [kinds]{, mostly in [colours]|}.",
    "{Someone|A person} who {needs|buys} [theme] for [uses] and {prefers|picks} "
    "{[top_brand]|[colours]} when {possible|they can}.",
    "{Practical needs|Everyday needs} {around|for} [uses] {lead|bring} them to [theme]; "
    "{they are|clearly} [trait]{ and [trait2]|}.",
    "{Their cart|Their order history} {holds|shows} [kinds]{ and more|}, {pointing to|a sign "
    "of} [trait] {taste|habits} in [theme].",
)
_LONG = (
    (
        "{This customer's|This shopper's|Their} purchase history {shows|demonstrates|points to} "
        "{a strong|a steady|a clear} interest in [theme]{, with some [theme2]|}.",
        "{This customer|This shopper} {shops mostly for|keeps returning to|is focused on} "
        "[theme]{, with occasional [theme2]|}.",
        "{Over the years|Across their purchases}, {this customer|this shopper} has {leaned "
        "towards|concentrated on|built up a collection of} [theme].",
        "[Theme_cap] {account for|make up} {most|the bulk} of {this customer's|their} "
        "{orders|purchases}{, with [theme2] close behind|}.",
        "{Judging by|Going by} {their orders|what they buy}, {this is|we have} {a [trait] "
        "shopper|someone} {devoted to|at home with} [theme].",
        "{It is|That is} [theme] {above all|first and foremost} {that|which} {fills|defines} "
        "{this customer's|their} {history|cart}.",
    ),
    (
        "{They have bought|Their purchases include|They have picked up} [kinds], {mostly for|"
        "often for|largely for} [uses].",
        "{Items such as|Purchases like} [kinds] {suggest|show} {they shop for|a need driven by} "
        "[uses].",
        "{Their reviews mention|They often write about} [uses], {and|while} {their purchases|"
        "their orders} include [kinds].",
    ),
    (
        "{They return to|They trust|They favor} brands such as [brands] and {favor|prefer|pick} "
        "[colours] {colors|tones}.",
        "{Brand-wise|When it comes to brands}, [brands] {appear|show up} {more than once|"
        "repeatedly}, {usually|mostly} in [colours].",
        "{Color matters to them|They have clear color preferences}: [colours] {dominate|come "
        "up again and again}{, alongside brands like [brands]|}.",
    ),
    (
        "{Their reviews are|As a reviewer, they are} [temper]: {they praise|they reward} "
        "{[quality] materials|accurate sizing|solid construction} and {are quick to|do not "
        "hesitate to} {point out|call out} {flaws in finish or fit|weak materials}.",
        "{In reviews|When they review}, they {come across as|are} [temper], {paying attention|"
        "noting details} {to finish and fit|like materials and sizing}.",
        "{Their ratings|Their reviews} {suggest|reveal} a [temper] {buyer|customer} who "
        "{notices|comments on} {materials|fit|value}.",
    ),
    (
        "{Their history suggests|Overall, they make} {practical|considered|repeat} purchases "
        "{rather than impulse buys|over impulse buys}, with an eye on [value_phrase].",
        "{All in all|Overall|In short}, {they are|this is} a [trait] {buyer|shopper} who "
        "{cares about|looks for} [value_phrase].",
        "{They seem|They appear} {to weigh|to care about} [value_phrase] {before|when} "
        "{buying|ordering}.",
    ),
)
_LONG_EXTRA = (
    (
        "{Price-wise|On price}, they {lean towards|tend to pick} {[value_phrase]|items that "
        "offer [value_phrase]}{, rarely splurging|, without chasing the cheapest option|}.",
        "They {weigh|think about} [value_phrase] {carefully|before buying|in most choices}.",
    ),
    (
        "{Their most recent purchase|The latest order}, [a_thing], {fits this picture|is in "
        "keeping with that|follows the same pattern}.",
        "{Lately|Most recently}, they {added|picked up|bought} [a_thing]{ from [brand]|}.",
    ),
    (
        "{Style-wise|In terms of style}, they {favor|like|go for} {a [style_word] look|"
        "[style_word] designs|things that feel [style_word]}.",
        "{A [style_word] streak|A taste for [style_word] things} {runs through|shows in} "
        "{their choices|what they buy}.",
    ),
)

_TRAITS = {
    "budget": ("value-conscious", "budget-minded", "thrifty", "price-aware", "frugal"),
    "quality": ("quality-focused", "discerning", "premium-leaning", "detail-oriented"),
    "loyal": ("brand-loyal", "consistent", "loyal"),
    "curious": ("curious", "adventurous", "open-minded", "exploring"),
    "happy": ("enthusiastic", "easy-going", "upbeat", "appreciative"),
    "picky": ("demanding", "critical", "hard-to-please", "exacting"),
    "even": ("practical", "pragmatic", "level-headed", "sensible"),
}
_STYLE_TRAITS = {
    "casual": ("casual", "laid-back", "comfort-first"),
    "classic": ("classic", "timeless", "polished"),
    "sporty": ("sporty", "active", "athletic"),
    "dressy": ("stylish", "elegant", "fashion-forward"),
    "bohemian": ("bohemian", "free-spirited", "artsy"),
    "basic": ("no-frills", "straightforward", "practical"),
    "professional": ("professional", "polished", "businesslike"),
    "colorful": ("colorful", "playful", "creative"),
    "minimalist": ("minimalist", "tidy", "understated"),
    "heavy-duty": ("durability-minded", "rugged", "hard-working"),
}
_ROLES = {
    "office": {
        "my home office": ("home-office worker", "remote worker"),
        "the classroom": ("teacher", "educator"),
        "our small business": ("small-business owner", "entrepreneur"),
        "journaling": ("journaler", "writer"),
        "shipping orders": ("online seller", "shipper"),
        "studying": ("student", "learner"),
        "art projects": ("crafter", "artist"),
        "bookkeeping": ("bookkeeper", "organizer"),
        "planning meetings": ("planner", "manager"),
        "my kids' homework": ("parent", "family organizer"),
    },
    "clothing": {
        "weekend outings": ("weekend dresser", "casual dresser"),
        "the office": ("professional", "office dresser"),
        "travel": ("traveler", "globetrotter"),
        "the gym": ("gym-goer", "athlete"),
        "evening events": ("socialite", "evening dresser"),
        "everyday wear": ("everyday dresser", "shopper"),
        "hiking trips": ("hiker", "outdoor enthusiast"),
        "date nights": ("romantic", "style-conscious dater"),
        "running errands": ("busy parent", "errand runner"),
        "summer vacations": ("vacationer", "sun seeker"),
    },
}
_VALUE = {
    "budget": ("value", "a good price", "getting their money's worth", "affordability"),
    "quality": ("quality", "durability", "craftsmanship", "things that last"),
}


def _temper(facts: Facts) -> str:
    return "happy" if facts.mean_rating >= 4.3 else "picky" if facts.mean_rating < 3.4 else "even"


def _traits(facts: Facts, shopper: Shopper, rng: random.Random) -> list[str]:
    pools = [
        _STYLE_TRAITS[shopper.style],
        _TRAITS[facts.value],
        _TRAITS["loyal" if facts.loyal else "curious"],
        _TRAITS[_temper(facts)],
    ]
    rng.shuffle(pools)
    return list(dict.fromkeys(rng.choice(pool) for pool in pools))


def narratives(
    catalog: Catalog,
    purchases: list[Purchase],
    uses: list[str | None],
    shopper: Shopper,
    rng: random.Random,
) -> dict[str, dict[str, str]]:
    """The release's `last_purchase` and `user` objects."""
    facts = gather(catalog, purchases, uses)
    values = _values(catalog, facts)
    traits = _traits(facts, shopper, rng)
    values |= {
        "Kinds_cap": values["kinds"][:1].upper() + values["kinds"][1:],
        "Theme_cap": values["theme"][:1].upper() + values["theme"][1:],
        "Use_cap": values["use"][:1].upper() + values["use"][1:],
        "Uses_cap": values["uses"][:1].upper() + values["uses"][1:],
        "a_thing": catalog.leaves[facts.last.item.leaf].a(facts.last.item.colour.lower()),
        "style_word": rng.choice(_STYLE_TRAITS[shopper.style]),
        "trait": traits[0],
        "trait2": traits[1],
        "Trait": traits[0].capitalize(),
        "temper": rng.choice(_TRAITS[_temper(facts)]),
        "value_phrase": rng.choice(_VALUE[facts.value]),
    }
    rating = facts.last.rating
    mood = "good" if rating >= 4 else "mixed" if rating == 3 else "bad"
    extra = [
        _EXPLAIN_HISTORY,
        _EXPLAIN_TASTE["loyal" if facts.loyal else "curious"],
        _EXPLAIN_USE,
        _EXPLAIN_PRICE[facts.value],
    ]
    chosen = [_EXPLAIN_REVIEW[mood], *rng.sample(extra, rng.choice((2, 2, 3)))]
    if rng.random() < 0.3:  # the review now and then comes last
        chosen.append(chosen.pop(0))
    explanation = " ".join(render_one(rng, options, values) for options in chosen)
    endorsement_parts = [
        _ENDORSE_OPEN,
        _ENDORSE_WHY,
        _ENDORSE_DETAIL,
        _ENDORSE_PRICE,
        _ENDORSE_CLOSE,
    ]
    endorsement = " ".join(render_one(rng, part, values) for part in endorsement_parts)
    # The theme first; then four of the other topics, in any order.
    topics = rng.sample([*_LONG[1:], *_LONG_EXTRA], 4)
    long_sentences = [render_one(rng, options, values) for options in (_LONG[0], *topics)]
    role = rng.choice(
        _ROLES[catalog.category].get(facts.uses[0] if facts.uses else "", ("shopper", "buyer"))
    )
    profile_traits = [t.capitalize() for t in traits[: rng.choice((2, 2, 3))]]
    profile = f"{', '.join(profile_traits)} {role}"
    return {
        "last_purchase": {
            "reason": render_one(rng, _REASON[facts.last.step], values),
            "explanation": explanation,
            "endorsement": endorsement,
        },
        "user": {
            "profile": profile,
            "brief_summary": render_one(rng, _BRIEF, values),
            "long_summary": " ".join(long_sentences),
        },
    }


def rater_scores(purchases: list[Purchase], rng: random.Random, groups) -> dict:
    """Auto-rater scores (1-7) near the release's means; longer histories ground better."""
    richness = min(1.0, len(purchases) / 20)
    means = {
        ("user", "veracity"): 6.0,
        ("user", "grounding"): 5.5 + richness,
        ("user", "clarity"): 5.35,
        ("user", "personalization"): 5.2,
        ("user", "confidence"): 4.1,
        ("last_purchase", "veracity"): 5.75,
        ("last_purchase", "grounding"): 4.7 + richness,
        ("last_purchase", "foresight"): 4.0,
        ("last_purchase", "clarity"): 5.2,
        ("last_purchase", "personalization"): 5.25,
        ("last_purchase", "confidence"): 4.55,
        ("example", "richness"): 3.5 + 2 * richness,
        ("example", "confidence"): 6.0,
    }
    return {
        group: {
            attribute: max(1, min(7, round(rng.gauss(means.get((group, attribute), 5.5), 0.8))))
            for attribute in attributes
        }
        for group, attributes in groups.items()
    }
