"""Canonical word sets shared by the task-prompt builders and the embedded zoo.

Everything here is model-agnostic: plain Python lists of plain strings, with no
leading spaces and no tokenizer assumptions.  Scoring code turns these words
into prompts for *any* model (for a BPE model such as GPT-2 it will typically
prepend a space, " Mary", and keep only words that encode to a single token);
the embedded zoo (``wiki_builder.zoo``) builds its word-level vocabulary from
exactly these lists, so for the zoo models every entry is one token.

Sets
----
NAMES            ~40 common English first names (IOI subjects / indirect objects)
IOI_PLACES       places for "When A and B went to the PLACE , ..."
IOI_OBJECTS      objects for "... B gave a OBJECT to A"
IOI_VERBS        past-tense transfer verbs ("gave", "handed", ...)
IOI_PAPER_*      Wang et al. 2022's names (109), places, objects and 15 templates
IOI_TEMPLATES    IOI sentence templates, with ``{A}`` / ``{B}`` / ``{S}`` /
                 ``{IO}`` / ``{PLACE}`` / ``{OBJECT}`` / ``{VERB}`` slots; tokens
                 separated by single spaces, punctuation spaced out
DIGITS           "0" .. "9"
NUMBERS          "1" .. "200" written as digits (the zoo uses "0" .. "100")
NUMBER_WORDS     "one" .. "twenty"
ORDINALS         "first" .. "tenth"
MONTHS           "January" .. "December"
DAYS             "Monday" .. "Sunday"
MONTH_PREFIXES   "Jan" .. "Dec"
DAY_PREFIXES     "Mon" .. "Sun"
LETTERS          "A" .. "Z"
CENTURIES        "11" .. "17" (greater-than task: year = century + two digits)
TWO_DIGIT        "00" .. "99"
GREATER_THAN_NOUNS  nouns for "The NOUN lasted from the year 17 32 to the year 17"
GREATER_THAN_TEMPLATE  the greater-than template with ``{NOUN}``, ``{C}``, ``{YY}``
FILLER           a few hundred plain nouns / verbs / adjectives for random sequences
SEQUENCES        name -> ordered list, for sequence-continuation tasks; the
                 entries in CYCLIC wrap around (December -> January)
"""

from __future__ import annotations

NAMES: list[str] = [
    "Mary", "John", "Tom", "James", "Dan", "Sid", "Martin", "Amy",
    "Paul", "Kate", "Anna", "Mark", "Lisa", "David", "Sarah", "Peter",
    "Emma", "Jack", "Laura", "Mike", "Alice", "Bob", "Rose", "Sam",
    "Lucy", "Ben", "Grace", "Adam", "Jane", "Tim", "Helen", "Eric",
    "Ruth", "Carl", "Susan", "George", "Claire", "Frank", "Anne", "Steve",
]

IOI_PLACES: list[str] = [
    "store", "garden", "restaurant", "school", "hospital", "office", "house",
    "station", "park", "market", "library", "beach",
]

IOI_OBJECTS: list[str] = [
    "drink", "ring", "kiss", "bone", "basketball", "computer", "necklace",
    "book", "letter", "snack", "gift", "ball",
]

IOI_VERBS: list[str] = ["gave", "handed", "passed", "sent", "showed", "brought"]

# Tokens are separated by single spaces and punctuation is spaced out, so the
# same string works for word-level tokenizers and (after the usual leading-space
# handling) for BPE tokenizers.
IOI_TEMPLATES: list[str] = [
    "When {A} and {B} went to the {PLACE} , {S} {VERB} a {OBJECT} to {IO}",
    "After {A} and {B} went to the {PLACE} , {S} {VERB} a {OBJECT} to {IO}",
    "When {A} and {B} got a {OBJECT} at the {PLACE} , {S} decided to give it to {IO}",
    "While {A} and {B} were working at the {PLACE} , {S} {VERB} a {OBJECT} to {IO}",
    "Then , {A} and {B} had a long argument , and afterwards {S} said to {IO}",
    "Friends {A} and {B} found a {OBJECT} at the {PLACE} . {S} {VERB} it to {IO}",
]

# Wang et al. 2022 ("Interpretability in the Wild"), the IOI dataset of their code
# (ioi_dataset.py, as reused by ACDC): 109 names, 8 places, 8 objects and 15 templates. The
# paper lists each template twice, BABA ("Then, B and A went ...; B gave ... to A") and ABBA
# (the first clause's names swapped); here ``{A}`` and ``{B}`` are the first clause's names in
# order, ``{S}`` the subject, ``{IO}`` the answer, and the builder alternates ABBA and BABA,
# which gives the paper's 30. Real punctuation (no spacing out): these are for BPE tokenizers.
IOI_PAPER_NAMES: list[str] = [
    "Aaron", "Adam", "Alan", "Alex", "Alice", "Amy", "Anderson", "Andre", "Andrew", "Andy",
    "Anna", "Anthony", "Arthur", "Austin", "Blake", "Brandon", "Brian", "Carter", "Charles", "Charlie",
    "Christian", "Christopher", "Clark", "Cole", "Collins", "Connor", "Crew", "Crystal", "Daniel", "David",
    "Dean", "Edward", "Elizabeth", "Emily", "Eric", "Eva", "Ford", "Frank", "George", "Georgia",
    "Graham", "Grant", "Henry", "Ian", "Jack", "Jacob", "Jake", "James", "Jamie", "Jane",
    "Jason", "Jay", "Jennifer", "Jeremy", "Jessica", "John", "Jonathan", "Jordan", "Joseph", "Joshua",
    "Justin", "Kate", "Kelly", "Kevin", "Kyle", "Laura", "Leon", "Lewis", "Lisa", "Louis",
    "Luke", "Madison", "Marco", "Marcus", "Maria", "Mark", "Martin", "Mary", "Matthew", "Max",
    "Michael", "Michelle", "Morgan", "Patrick", "Paul", "Peter", "Prince", "Rachel", "Richard", "River",
    "Robert", "Roman", "Rose", "Ruby", "Russell", "Ryan", "Sarah", "Scott", "Sean", "Simon",
    "Stephen", "Steven", "Sullivan", "Taylor", "Thomas", "Tyler", "Victoria", "Warren", "William",
]
IOI_PAPER_PLACES: list[str] = ["store", "garden", "restaurant", "school", "hospital", "office", "house", "station"]
IOI_PAPER_OBJECTS: list[str] = ["ring", "kiss", "bone", "basketball", "computer", "necklace", "drink", "snack"]
IOI_PAPER_TEMPLATES: list[str] = [
    "Then, {A} and {B} went to the {PLACE}. {S} gave a {OBJECT} to {IO}",
    "Then, {A} and {B} had a lot of fun at the {PLACE}. {S} gave a {OBJECT} to {IO}",
    "Then, {A} and {B} were working at the {PLACE}. {S} decided to give a {OBJECT} to {IO}",
    "Then, {A} and {B} were thinking about going to the {PLACE}. {S} wanted to give a {OBJECT} to {IO}",
    "Then, {A} and {B} had a long argument, and afterwards {S} said to {IO}",
    "After {A} and {B} went to the {PLACE}, {S} gave a {OBJECT} to {IO}",
    "When {A} and {B} got a {OBJECT} at the {PLACE}, {S} decided to give it to {IO}",
    "When {A} and {B} got a {OBJECT} at the {PLACE}, {S} decided to give the {OBJECT} to {IO}",
    "While {A} and {B} were working at the {PLACE}, {S} gave a {OBJECT} to {IO}",
    "While {A} and {B} were commuting to the {PLACE}, {S} gave a {OBJECT} to {IO}",
    "After the lunch, {A} and {B} went to the {PLACE}. {S} gave a {OBJECT} to {IO}",
    "Afterwards, {A} and {B} went to the {PLACE}. {S} gave a {OBJECT} to {IO}",
    "Then, {A} and {B} had a long argument. Afterwards {S} said to {IO}",
    "The {PLACE} {A} and {B} went to had a {OBJECT}. {S} gave it to {IO}",
    "Friends {A} and {B} found a {OBJECT} at the {PLACE}. {S} gave it to {IO}",
]

DIGITS: list[str] = [str(i) for i in range(10)]
NUMBERS: list[str] = [str(i) for i in range(1, 201)]

NUMBER_WORDS: list[str] = [
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
    "seventeen", "eighteen", "nineteen", "twenty",
]

ORDINALS: list[str] = [
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh",
    "eighth", "ninth", "tenth",
]

MONTHS: list[str] = [
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
]

DAYS: list[str] = [
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
]

MONTH_PREFIXES: list[str] = [m[:3] for m in MONTHS]
DAY_PREFIXES: list[str] = [d[:3] for d in DAYS]

LETTERS: list[str] = [chr(c) for c in range(ord("A"), ord("Z") + 1)]

CENTURIES: list[str] = [str(c) for c in range(11, 18)]
TWO_DIGIT: list[str] = [f"{i:02d}" for i in range(100)]

GREATER_THAN_NOUNS: list[str] = [
    "war", "expedition", "reign", "drought", "siege", "voyage", "dynasty",
    "famine", "project", "occupation",
]
GREATER_THAN_TEMPLATE: str = "The {NOUN} lasted from the year {C} {YY} to the year {C}"

FILLER: list[str] = """
apple river mountain table window forest paper bottle engine
candle pillow ladder mirror basket button carpet castle cloud coffee
desert doctor dragon finger flower hammer island jacket kettle lemon
needle ocean orange parrot pencil pepper pirate planet pocket
rabbit rocket saddle shadow shovel silver spider spoon stone sugar
tiger tomato tunnel turtle violin wagon whale wizard yellow zebra
anchor arrow badge banner barrel beacon blanket bridge bucket cabin
camera canvas cargo cellar chain chimney circle clock collar copper
cotton cradle crystal curtain dagger dollar engine falcon feather fence
fiddle flag fossil fountain frost gallery glove goblet harbor helmet
honey hunter iron jungle kitten lantern leather lever lizard magnet banjo cobweb
marble meadow medal melon metal monkey motor muffin nest noodle
acorn biscuit cactus domino emerald glacier hammock igloo jigsaw kayak
lobster mitten nectar oyster pumpkin quartz raisin saucer teapot walnut
oven paddle palace panda parcel pebble piano pickle pillar plate
pony puddle puzzle quilt radio raft rail ribbon ridge robot
rope ruby sandal scarf scissors shell shield ship skate sled
sock soda stair statue storm stove straw string sword tablet
tent thread throne ticket tower toy trumpet tulip umbrella valley
vase velvet wallet wheel whistle willow wire wool yacht canyon
run jump walk swim climb throw catch build paint write
read sing dance cook clean carry push pull lift drop
open close break fix wash fold bend shake hide seek
grow burn melt freeze float sink fly crawl roll spin
kick bake boil chop dig drill fill pour sew knit
red blue green quiet loud bright dark soft hard heavy
light warm cold sharp smooth rough sweet sour bitter salty
happy sad brave calm eager fancy gentle jolly kind lazy
proud silly tiny huge narrow wide empty full fresh stale
ancient modern rapid slow clever strange famous hidden wild tame
""".split()
# de-duplicate while keeping order (a few words are listed twice above)
FILLER = list(dict.fromkeys(FILLER))

# Ordered sets used for sequence continuation ("3 4 5" -> "6").
SEQUENCES: dict[str, list[str]] = {
    "digits": DIGITS,
    "numbers": NUMBERS,
    "number_words": NUMBER_WORDS,
    "ordinals": ORDINALS,
    "months": MONTHS,
    "days": DAYS,
    "month_prefixes": MONTH_PREFIXES,
    "day_prefixes": DAY_PREFIXES,
    "letters": LETTERS,
}
# Sequences that wrap around (December -> January, Sunday -> Monday).
CYCLIC: frozenset[str] = frozenset({"months", "days", "month_prefixes", "day_prefixes"})

__all__ = [
    "NAMES", "IOI_PLACES", "IOI_OBJECTS", "IOI_VERBS", "IOI_TEMPLATES",
    "IOI_PAPER_NAMES", "IOI_PAPER_PLACES", "IOI_PAPER_OBJECTS", "IOI_PAPER_TEMPLATES",
    "DIGITS", "NUMBERS", "NUMBER_WORDS", "ORDINALS", "MONTHS", "DAYS",
    "MONTH_PREFIXES", "DAY_PREFIXES", "LETTERS", "CENTURIES", "TWO_DIGIT",
    "GREATER_THAN_NOUNS", "GREATER_THAN_TEMPLATE", "FILLER", "SEQUENCES", "CYCLIC",
]
