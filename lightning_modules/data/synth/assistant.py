"""A voice-assistant domain, the default text of the rendered corpus: requests and questions
generated from a grammar with slot lists (timers, alarms, weather, music, shopping lists,
calls and messages, smart home, numbers, times, dates, people and places).

The paper's models are voice-assistant recognizers, and a domain with a grammar is a task a
small model can learn on a CPU while staying a real ASR task: over a thousand distinct
words, names and places a model must spell, numbers, times and dates said as words, and test
sentences that never occur in training. Every word is written the way the engines read it
(numbers spelled out, no abbreviations), so the transcript is what is said.

The pool is generated once, from a fixed seed, and sorted, so it is the same list on every
machine; the corpus seed only shuffles it (`plan.py`), as for the open-vocabulary text.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from lightning_modules.data.synth.texts import Sentence
from lightning_modules.data.text import normalize_transcript


def _listed(text: str) -> tuple[str, ...]:
    """A slot list written compactly, its values separated by `|`."""
    return tuple(text.split("|"))


POOL_SIZE = 24_000
"""Distinct sentences in the pool: more than the large corpus uses (13,000)."""
_POOL_SEED = 20_210_208  # fixed: the pool is part of the corpus definition, not of its seed

_ONES = _listed(
    "zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    "fifteen|sixteen|seventeen|eighteen|nineteen"
)
_TENS = _listed("twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety")


def number_words(value: int) -> str:
    """0 ≤ value < 10000 as it is said: 'three hundred and twelve', 'two thousand and five'."""
    if not 0 <= value < 10_000:
        raise ValueError(f"number_words covers 0 to 9999, got {value}")
    if value < 20:
        return _ONES[value]
    if value < 100:
        tens, ones = divmod(value, 10)
        return _TENS[tens - 2] + (f" {_ONES[ones]}" if ones else "")
    if value < 1000:
        hundreds, rest = divmod(value, 100)
        return f"{_ONES[hundreds]} hundred" + (f" and {number_words(rest)}" if rest else "")
    thousands, rest = divmod(value, 1000)
    joiner = " and " if 0 < rest < 100 else " "
    return f"{_ONES[thousands]} thousand" + (joiner + number_words(rest) if rest else "")


ORDINALS = _listed(
    "first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|"
    "thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|"
    "twenty-first|twenty-second|twenty-third|twenty-fourth|twenty-fifth|twenty-sixth|"
    "twenty-seventh|twenty-eighth|twenty-ninth|thirtieth|thirty-first"
)

FIRST_NAMES = _listed(
    "Aaron|Abigail|Adam|Adrian|Aisha|Alan|Albert|Alice|Alicia|Amanda|Amelia|Amy|Andrew|Angela|"
    "Anna|Anthony|Arthur|Ava|Barbara|Beatrice|Ben|Benjamin|Bernard|Beth|Brandon|Brian|Bridget|"
    "Caleb|Carl|Carlos|Caroline|Catherine|Charles|Charlotte|Chloe|Christopher|Claire|Colin|"
    "Connor|Daniel|David|Deborah|Dennis|Diana|Dominic|Donna|Dorothy|Douglas|Dylan|Edward|"
    "Eleanor|Elena|Eli|Elizabeth|Ella|Emily|Emma|Eric|Ethan|Eva|Evelyn|Felix|Fiona|Frank|"
    "Gabriel|George|Georgia|Grace|Gregory|Hannah|Harold|Harry|Hazel|Helen|Henry|Holly|Hugo|"
    "Ian|Isaac|Isabel|Ivan|Jack|Jacob|James|Jane|Jasmine|Jason|Jennifer|Jessica|Joan|John|"
    "Jonathan|Joseph|Joshua|Julia|Justin|Karen|Kate|Keith|Kevin|Laura|Lauren|Leo|Leon|Lily|"
    "Linda|Lisa|Logan|Louis|Lucas|Lucy|Luke|Madeline|Margaret|Maria|Mark|Martin|Mary|Matthew|"
    "Megan|Melissa|Michael|Monica|Nancy|Nathan|Nicholas|Nina|Noah|Oliver|Olivia|Oscar|Owen|"
    "Patricia|Patrick|Paul|Peter|Philip|Rachel|Rebecca|Richard|Robert|Rose|Ruby|Ryan|Samuel|"
    "Sandra|Sarah|Scott|Sean|Simon|Sophia|Stephen|Steven|Susan|Thomas|Timothy|Victor|Victoria|"
    "Vincent|Walter|William|Zoe"
)
LAST_NAMES = _listed(
    "Adams|Allen|Anderson|Baker|Barnes|Bell|Bennett|Brooks|Brown|Butler|Campbell|Carter|Clark|"
    "Collins|Cook|Cooper|Cox|Davis|Edwards|Evans|Fisher|Foster|Garcia|Gibson|Gordon|Graham|"
    "Gray|Green|Griffin|Hall|Harris|Hayes|Henderson|Hill|Howard|Hughes|Jackson|James|Jenkins|"
    "Johnson|Jones|Kelly|Kennedy|King|Lewis|Long|Marshall|Martin|Miller|Mitchell|Moore|Morgan|"
    "Morris|Murphy|Murray|Nelson|Palmer|Parker|Perry|Peterson|Phillips|Powell|Price|Reed|"
    "Reynolds|Richardson|Roberts|Robinson|Rogers|Ross|Russell|Sanders|Scott|Shaw|Simmons|"
    "Smith|Stewart|Sullivan|Taylor|Thompson|Turner|Walker|Wallace|Ward|Watson|Webb|West|White|"
    "Williams|Wilson|Wood|Wright|Young"
)
RELATIONS = _listed(
    "mom|dad|grandma|grandpa|my sister|my brother|my wife|my husband|my aunt|my uncle|"
    "my cousin|my boss|the office|the babysitter|the doctor|the dentist|my neighbor"
)
CITIES = _listed(
    "Amsterdam|Athens|Atlanta|Austin|Baltimore|Bangkok|Barcelona|Berlin|Boston|Brussels|"
    "Budapest|Buenos Aires|Cairo|Calgary|Chicago|Cleveland|Copenhagen|Dallas|Denver|Detroit|"
    "Dublin|Edinburgh|Florence|Frankfurt|Geneva|Glasgow|Hamburg|Helsinki|Honolulu|Houston|"
    "Istanbul|Jakarta|Lisbon|Liverpool|London|Los Angeles|Madrid|Manchester|Melbourne|Memphis|"
    "Miami|Milan|Minneapolis|Montreal|Moscow|Munich|Nairobi|Nashville|New Orleans|New York|"
    "Oslo|Ottawa|Paris|Philadelphia|Phoenix|Pittsburgh|Portland|Prague|Quebec|Rome|San Diego|"
    "San Francisco|Santiago|Seattle|Seoul|Singapore|Stockholm|Sydney|Tokyo|Toronto|Vancouver|"
    "Venice|Vienna|Warsaw|Washington|Zurich"
)
COUNTRIES = _listed(
    "Argentina|Australia|Austria|Belgium|Brazil|Canada|Chile|China|Colombia|Denmark|Egypt|"
    "Finland|France|Germany|Greece|Hungary|Iceland|India|Ireland|Italy|Japan|Kenya|Mexico|"
    "Morocco|Norway|Peru|Poland|Portugal|Scotland|Spain|Sweden|Switzerland|Thailand|Turkey|"
    "Vietnam|Wales"
)
WEEKDAYS = _listed("Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday")
MONTHS = _listed(
    "January|February|March|April|May|June|July|August|September|October|November|December"
)
WHEN = _listed(
    "today|tonight|tomorrow|tomorrow morning|tomorrow night|this afternoon|this evening|"
    "this weekend|next week|on Monday|on Tuesday|on Wednesday|on Thursday|on Friday|"
    "on Saturday|on Sunday|right now|later today|the day after tomorrow"
)
WEATHER_WORDS = _listed(
    "rain|snow|thunder|hail|fog|wind|sunshine|a storm|a heat wave|frost|drizzle|sleet"
)
ITEMS = _listed(
    "apples|avocados|bananas|batteries|beans|bread|broccoli|butter|carrots|cereal|cheese|"
    "chicken|chocolate|cinnamon|coffee|cookies|corn|crackers|cream|cucumbers|dish soap|eggs|"
    "flour|garlic|ginger|grapes|honey|ice cream|jam|juice|ketchup|lemons|lettuce|light bulbs|"
    "limes|milk|mushrooms|mustard|noodles|oatmeal|olive oil|onions|orange juice|oranges|"
    "paper towels|pasta|peanut butter|pears|pepper|pickles|potatoes|rice|salmon|salt|"
    "sandwich bags|shampoo|soup|spinach|strawberries|sugar|tea|tissues|toilet paper|tomatoes|"
    "toothpaste|tortillas|tuna|vinegar|walnuts|yogurt|zucchini"
)
LIST_NAMES = _listed("shopping|grocery|to do|packing|party|birthday|hardware|camping|reading")
TASKS = _listed(
    "call the plumber|pay the rent|water the plants|walk the dog|feed the cat|buy a gift|"
    "book a table|renew my passport|pick up the kids|take out the trash|check the mail|"
    "send the invoice|clean the kitchen|return the library books|charge my phone|"
    "pack my lunch|stretch|drink some water|take my medicine|fill up the car|"
    "finish the report|practice the piano|change the sheets|order more printer ink"
)
GENRES = _listed(
    "jazz|blues|classical|country|rock|hip hop|reggae|folk|soul|disco|techno|gospel|piano|"
    "acoustic|lullaby|opera|salsa|punk|metal|ambient"
)
ADJECTIVES = _listed(
    "blue|golden|silent|electric|midnight|broken|wild|lonely|crystal|velvet|hollow|burning|"
    "frozen|silver|gentle|restless|faded|secret|distant|happy|northern|empty|sweet|rolling"
)
NOUNS = _listed(
    "river|heart|highway|garden|mountain|ocean|window|shadow|morning|thunder|harbor|valley|"
    "horizon|lantern|meadow|island|canyon|echo|forest|desert|feather|mirror|engine|candle"
)
BANDS = ("the {adjective} {plural}", "{first} {last}", "{adjective} {noun}")
PLURALS = _listed(
    "foxes|wolves|strangers|brothers|sisters|giants|pilots|sailors|ghosts|rangers|kings|"
    "queens|monkeys|painters|lovers|robots|dreamers|drifters"
)
ROOMS = _listed(
    "living room|kitchen|bedroom|bathroom|hallway|office|garage|basement|dining room|nursery|"
    "porch|attic|laundry room|guest room|patio|front yard|back yard"
)
DEVICES = _listed(
    "lights|lamp|fan|heater|air conditioner|television|speaker|plug|blinds|curtains|"
    "coffee maker|dishwasher|washing machine|dryer|oven|vacuum|sprinklers|fireplace"
)
COLORS = _listed(
    "red|orange|yellow|green|blue|purple|pink|white|warm white|cool white|teal|lavender"
)
PLACE_KINDS = _listed(
    "coffee shop|pharmacy|gas station|grocery store|bakery|pizza place|hardware store|"
    "bookstore|hospital|post office|library|bank|gym|park|movie theater|parking garage|hotel|"
    "sushi restaurant|bus stop|train station|car wash|veterinarian"
)
STREETS = _listed(
    "Maple|Oak|Pine|Cedar|Elm|Walnut|Chestnut|Main|Market|Church|Park|Lake|Hill|Bridge|Mill|"
    "Spring|River|Sunset|Highland|Franklin|Lincoln|Jefferson|Madison|Washington|Grant"
)
STREET_KINDS = _listed("street|avenue|road|drive|lane|boulevard|court|place")
UNITS = (
    ("inches", "feet"),
    ("feet", "miles"),
    ("centimeters", "meters"),
    ("grams", "kilograms"),
    ("ounces", "pounds"),
    ("cups", "quarts"),
    ("minutes", "hours"),
    ("seconds", "minutes"),
    ("days", "weeks"),
    ("kilometers", "miles"),
)
HOLIDAYS = _listed(
    "Christmas|New Year's Eve|New Year's Day|Halloween|Thanksgiving|Easter|Valentine's Day|"
    "Independence Day|Labor Day|my birthday|the summer holidays|spring break"
)
ANIMALS = _listed(
    "elephant|giraffe|penguin|dolphin|octopus|kangaroo|tiger|lion|zebra|owl|eagle|shark|whale|"
    "koala|panda|camel|hedgehog|beaver|squirrel|turtle|crocodile|rabbit|hamster|parrot"
)
TOPICS = _listed(
    "history|science|cooking|gardening|travel|business|sports|comedy|technology|music|health|"
    "politics|astronomy|philosophy|photography|fishing|knitting|chess|football|tennis"
)
STATUSES = _listed(
    "running late|on my way|almost home|stuck in traffic|at the store|leaving now|"
    "in a meeting|at the airport|parking the car|going to be ten minutes late"
)
LABELS = _listed("pasta|laundry|oven|tea|pizza|egg|nap|workout|homework|rice|bread|break")

DISHES = _listed(
    "lasagna|pancakes|banana bread|chicken curry|apple pie|tomato soup|fried rice|guacamole|"
    "meatballs|chili|risotto|omelette|waffles|brownies|hummus|paella|ramen|tacos|burritos|"
    "pad thai|shepherd's pie|mac and cheese|french toast|lemonade|granola|pesto|stir fry|"
    "cheesecake|muffins|scones|dumplings|falafel|goulash|carrot cake|fish and chips|"
    "mashed potatoes|pumpkin soup|caesar salad|beef stew|roast chicken|garlic bread|"
    "spaghetti carbonara|chocolate chip cookies|blueberry muffins|vegetable lasagna"
)
MASCOTS = _listed(
    "tigers|bears|eagles|lions|sharks|hawks|wolves|rangers|giants|pirates|rockets|comets|"
    "falcons|panthers|bulls|stallions|dolphins|hornets|jets|kings|warriors|wizards|knights|"
    "vikings|raiders|cardinals|orioles|blue jays|red sox|thunder"
)
SPORTS = _listed("football|basketball|baseball|hockey|soccer|rugby|cricket|volleyball")
LANGUAGES = _listed(
    "Spanish|French|German|Italian|Portuguese|Dutch|Swedish|Polish|Greek|Turkish|Japanese|"
    "Chinese|Korean|Hindi|Arabic|Russian|Hebrew|Welsh|Irish|Finnish"
)
PHRASES = _listed(
    "good morning|thank you very much|where is the train station|how much does this cost|"
    "i would like a coffee|nice to meet you|see you tomorrow|happy birthday|good night|"
    "where is the bathroom|i am lost|can you help me|the bill please|i love you|"
    "what time is it|excuse me|i don't understand|how are you|welcome|good luck"
)
WORDS = _listed(
    "ambiguous|benevolent|candid|diligent|eloquent|frugal|gregarious|humble|impeccable|"
    "jovial|keen|lucid|meticulous|nostalgia|obsolete|pragmatic|quaint|resilient|serene|"
    "tenacious|ubiquitous|vivid|whimsical|zealous|anecdote|brevity|catalyst|dilemma|"
    "empathy|fortitude|gratitude|hypothesis|integrity|juxtaposition|kindred|labyrinth|"
    "melancholy|nuance|optimism|paradox|quarantine|rhetoric|solitude|tranquil|utopia|"
    "vulnerable|wanderlust|euphoria|serendipity|ephemeral|eccentric|curious|generous|"
    "stubborn|clumsy|mysterious|ancient|fragile|brilliant|cautious|enormous|peculiar|"
    "reluctant|spontaneous|thorough|vigilant|hilarious|gorgeous|tedious|abundant|"
    "courageous|delicate|elegant|fearless|graceful|harmonious|inventive|luminous|"
    "magnificent|notorious|obedient|patient|radiant|sincere|thrifty|unique|versatile"
)
MORE_FIRST_NAMES = _listed(
    "Abdul|Aiden|Alex|Alfred|Alma|Amir|Anita|Annie|Antonio|Arjun|Audrey|Bella|Bianca|Boris|"
    "Bruce|Camila|Carmen|Cecilia|Chen|Clara|Daisy|Darius|Delia|Derek|Diego|Elijah|Elsa|Enzo|"
    "Esther|Fatima|Freddie|Gavin|Gemma|Gloria|Hassan|Heidi|Hector|Ingrid|Iris|Jamal|Jonas|"
    "Juan|Kai|Kenji|Lara|Leila|Marco|Mateo|Maya|Miguel|Mila|Nadia|Omar|Pablo|Priya|Rafael|"
    "Rosa|Sofia|Tariq|Theo|Ursula|Wendy|Xavier|Yasmin|Yusuf|Zara"
)
MORE_LAST_NAMES = _listed(
    "Alvarez|Bailey|Banks|Bishop|Black|Bradley|Burns|Chapman|Chavez|Cole|Daniels|Dixon|"
    "Douglas|Duncan|Ellis|Fleming|Ford|Fox|Fraser|Freeman|Gonzalez|Hamilton|Hart|Holmes|"
    "Hunt|Kim|Knight|Lane|Lopez|Mason|Mendoza|Nguyen|Novak|Obrien|Olsen|Owens|Patel|Porter|"
    "Quinn|Ramirez|Rivera|Santos|Schmidt|Silva|Spencer|Stone|Tanaka|Walsh|Weaver|Wells"
)


class _Fill:
    """The slot values of one sentence, drawn from `rng`."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def pick(self, values: tuple[str, ...] | list[str]) -> str:
        return values[self.rng.integers(len(values))]

    def number(self, low: int, high: int) -> str:
        return number_words(int(self.rng.integers(low, high + 1)))

    def person(self) -> str:
        roll = self.rng.random()
        if roll < 0.25:
            return self.pick(RELATIONS)
        if roll < 0.55:
            return self.first_name()
        return f"{self.first_name()} {self.pick(LAST_NAMES + MORE_LAST_NAMES)}"

    def first_name(self) -> str:
        return self.pick(FIRST_NAMES + MORE_FIRST_NAMES)

    def duration(self) -> str:
        roll = self.rng.random()
        if roll < 0.5:
            minutes = int(self.rng.integers(1, 91))
            return f"{number_words(minutes)} minute" + ("s" if minutes > 1 else "")
        if roll < 0.7:
            seconds = int(self.rng.choice([10, 15, 20, 30, 40, 45, 50, 90]))
            return f"{number_words(seconds)} seconds"
        if roll < 0.85:
            hours = int(self.rng.integers(1, 5))
            return f"{number_words(hours)} hour" + ("s" if hours > 1 else "")
        hours, minutes = int(self.rng.integers(1, 3)), int(self.rng.choice([15, 20, 30, 45]))
        unit = "hour" if hours == 1 else "hours"
        return f"{number_words(hours)} {unit} and {number_words(minutes)} minutes"

    def time(self) -> str:
        hour = self.number(1, 12)
        minute = int(self.rng.choice([0, 0, 5, 10, 15, 20, 25, 30, 30, 40, 45, 50, 55]))
        if minute == 0:
            said = self.pick([f"{hour} o'clock", hour])
        elif minute < 10:
            said = f"{hour} oh {number_words(minute)}"
        else:
            said = f"{hour} {number_words(minute)}"
        return f"{said} {self.pick(['a m', 'p m', 'in the morning', 'in the evening', ''])}"

    def date(self) -> str:
        day = ORDINALS[self.rng.integers(28)]
        month = self.pick(MONTHS)
        return self.pick([f"{month} {day}", f"the {day} of {month}"])

    def band(self) -> str:
        pattern = self.pick(BANDS)
        return pattern.format(
            adjective=self.pick(ADJECTIVES),
            noun=self.pick(NOUNS),
            plural=self.pick(PLURALS),
            first=self.pick(FIRST_NAMES),
            last=self.pick(LAST_NAMES),
        )

    def song(self) -> str:
        return self.pick(
            [
                f"{self.pick(ADJECTIVES)} {self.pick(NOUNS)}",
                f"the {self.pick(NOUNS)} song",
                f"{self.pick(NOUNS)} of {self.pick(CITIES)}",
                f"{self.pick(ADJECTIVES)} {self.pick(WEEKDAYS)}",
            ]
        )

    def items(self) -> str:
        first, second = self.pick(ITEMS), self.pick(ITEMS)
        return first if first == second or self.rng.random() < 0.6 else f"{first} and {second}"


# Each domain: templates whose {slots} are filled by `_SLOTS`; a trailing "?" marks a question.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "timer": (
        "set a timer for {duration}",
        "set a {label} timer for {duration}",
        "start a {duration} timer",
        "how much time is left on the {label} timer?",
        "cancel the {label} timer",
        "add {duration} to my timer",
        "pause the timer",
    ),
    "alarm": (
        "wake me up at {time}",
        "set an alarm for {time} {when}",
        "set an alarm for {time} every {weekday}",
        "move my {time} alarm to {time}",
        "turn off my alarm for {weekday}",
        "what time is my alarm set for {when}?",
        "snooze for {duration}",
    ),
    "reminder": (
        "remind me to {task} at {time}",
        "remind me to {task} {when}",
        "remind me to {task} on {date}",
        "remind me in {duration} to {task}",
        "what are my reminders for {when}?",
        "delete the reminder to {task}",
    ),
    "weather": (
        "what's the weather in {city} {when}?",
        "what's the weather like {when}?",
        "will there be {weather} in {city} {when}?",
        "is it going to {verb_weather} {when}?",
        "how hot will it be in {city} {when}?",
        "do i need an umbrella {when}?",
        "what's the temperature in {city} right now?",
        "when will the {weather} stop in {city}?",
    ),
    "music": (
        "play {song} by {band}",
        "play some {genre} music",
        "play {genre} music in the {room}",
        "play the latest album by {band}",
        "who sings {song}?",
        "skip this song",
        "turn the volume up to {small_number}",
        "turn the volume down to {small_number}",
        "add this song to my {genre} playlist",
        "shuffle my playlist called {song}",
        "play the {topic} podcast from {weekday}",
    ),
    "lists": (
        "add {items} to my {list_name} list",
        "put {items} on the {list_name} list",
        "remove {item} from my {list_name} list",
        "what's on my {list_name} list?",
        "do i have {item} on my list?",
        "clear my {list_name} list",
        "create a new list called {list_name}",
    ),
    "calls": (
        "call {person}",
        "call {person} on speaker",
        "call {person} on their cell phone",
        "text {person} that i'm {status}",
        "send a message to {person} saying i'm {status}",
        "read my messages from {person}",
        "when did {person} call me?",
        "video call {person}",
        "what's {first_name}'s phone number?",
    ),
    "smart_home": (
        "turn on the {room} {device}",
        "turn off the {room} {device}",
        "switch off all the {device} in the {room}",
        "set the {room} lights to {percent} percent",
        "set the {room} lights to {color}",
        "dim the {room} lights",
        "set the thermostat to {temperature} degrees",
        "is the {room} {device} on?",
        "lock the front door",
        "is the garage door open?",
        "turn the {room} heater up by {small_number} degrees",
        "start the {device} at {time}",
    ),
    "numbers": (
        "what is {number} plus {number}?",
        "what's {number} minus {number}?",
        "what's {small_number} times {small_number}?",
        "what is {number} divided by {small_number}?",
        "how many {unit_small} are in {small_number} {unit_large}?",
        "convert {number} {unit_small} to {unit_large}",
        "what's {percent} percent of {number}?",
        "what is the square root of {number}?",
    ),
    "dates": (
        "what day of the week is {date}?",
        "how many days until {holiday}?",
        "what's the date {when}?",
        "what's on my calendar {when}?",
        "add a meeting with {person} on {date} at {time}",
        "move my appointment with {person} to {weekday}",
        "when is {holiday} this year?",
        "cancel my {time} meeting",
    ),
    "places": (
        "how far is {city} from {city}?",
        "find a {place_kind} near me",
        "find a {place_kind} near {street} {street_kind}",
        "navigate to {number} {street} {street_kind}",
        "how long will it take to drive to {city}?",
        "what time is it in {city}?",
        "is the {place_kind} on {street} {street_kind} open {when}?",
        "book a flight to {city} {when}",
        "how's the traffic on {street} {street_kind}?",
    ),
    "cooking": (
        "find a recipe for {dish}",
        "how do i make {dish}?",
        "how long do i bake {dish}?",
        "what do i need to make {dish}?",
        "add the ingredients for {dish} to my {list_name} list",
        "how many calories are in {dish}?",
    ),
    "sports": (
        "what was the score of the {team} game?",
        "when do the {team} play next?",
        "did the {team} win last night?",
        "who won the {sport} game {when}?",
        "show me the {sport} standings",
        "when is the next {sport} game in {city}?",
    ),
    "language": (
        "how do you say {phrase} in {language}?",
        "translate {phrase} into {language}",
        "what does {word} mean?",
        "define {word}",
        "what's a synonym for {word}?",
        "use {word} in a sentence",
        "how do you spell {word}?",
    ),
    "knowledge": (
        "what is the capital of {country}?",
        "how many people live in {city}?",
        "what language do they speak in {country}?",
        "how fast can a {animal} run?",
        "how long does a {animal} live?",
        "what does a {animal} eat?",
        "tell me a fun fact about the {animal}",
        "what's the time difference between {city} and {city}?",
        "tell me the news about {topic}",
        "how do you spell {item}?",
    ),
}

_SLOTS: dict[str, Callable[[_Fill], str]] = {
    "duration": _Fill.duration,
    "time": _Fill.time,
    "date": _Fill.date,
    "person": _Fill.person,
    "band": _Fill.band,
    "song": _Fill.song,
    "items": _Fill.items,
    "label": lambda f: f.pick(LABELS),
    "when": lambda f: f.pick(WHEN),
    "weekday": lambda f: f.pick(WEEKDAYS),
    "task": lambda f: f.pick(TASKS),
    "city": lambda f: f.pick(CITIES),
    "country": lambda f: f.pick(COUNTRIES),
    "weather": lambda f: f.pick(WEATHER_WORDS),
    "verb_weather": lambda f: f.pick(["rain", "snow", "hail", "freeze", "storm", "be windy"]),
    "genre": lambda f: f.pick(GENRES),
    "room": lambda f: f.pick(ROOMS),
    "device": lambda f: f.pick(DEVICES),
    "color": lambda f: f.pick(COLORS),
    "item": lambda f: f.pick(ITEMS),
    "list_name": lambda f: f.pick(LIST_NAMES),
    "status": lambda f: f.pick(STATUSES),
    "first_name": _Fill.first_name,
    "dish": lambda f: f.pick(DISHES),
    "team": lambda f: f"{f.pick(CITIES)} {f.pick(MASCOTS)}",
    "sport": lambda f: f.pick(SPORTS),
    "language": lambda f: f.pick(LANGUAGES),
    "phrase": lambda f: f.pick(PHRASES),
    "word": lambda f: f.pick(WORDS),
    "topic": lambda f: f.pick(TOPICS),
    "animal": lambda f: f.pick(ANIMALS),
    "holiday": lambda f: f.pick(HOLIDAYS),
    "place_kind": lambda f: f.pick(PLACE_KINDS),
    "street": lambda f: f.pick(STREETS),
    "street_kind": lambda f: f.pick(STREET_KINDS),
    "number": lambda f: f.number(0, 2000),
    "small_number": lambda f: f.number(1, 12),
    "percent": lambda f: f.pick(["ten", "twenty", "twenty five", "thirty", "forty", "fifty",
                                 "sixty", "seventy", "seventy five", "eighty", "ninety"]),
    "temperature": lambda f: f.number(55, 85),
    "unit_small": lambda f: f.pick([small for small, _ in UNITS]),
    "unit_large": lambda f: f.pick([large for _, large in UNITS]),
}  # fmt: skip
_FIELD = re.compile(r"\{(\w+)\}")


def generate(rng: np.random.Generator) -> str:
    """One request or question, as the engines should say it (case and final punctuation)."""
    domains = sorted(TEMPLATES)
    templates = TEMPLATES[domains[rng.integers(len(domains))]]
    template = templates[rng.integers(len(templates))]
    fill = _Fill(rng)
    text = _FIELD.sub(lambda match: _SLOTS[match.group(1)](fill), template)
    text = " ".join(text.split()).replace(" ?", "?")
    text = text[0].upper() + text[1:]
    return text if text.endswith("?") else text + "."


def assistant_sentences(size: int = POOL_SIZE, seed: int = _POOL_SEED) -> list[Sentence]:
    """`size` distinct sentences of the domain (by transcript), sorted by transcript."""
    rng = np.random.default_rng(seed)
    found: dict[str, Sentence] = {}
    attempts = 0
    while len(found) < size:
        attempts += 1
        if attempts > 50 * size:
            raise RuntimeError(f"the assistant grammar gave only {len(found)} distinct sentences")
        spoken = generate(rng)
        text = normalize_transcript(spoken)
        found.setdefault(text, Sentence(text, spoken, "assistant"))
    return sorted(found.values())
